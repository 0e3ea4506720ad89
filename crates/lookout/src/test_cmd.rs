//! `lookout test promql FILE...`: runs Prometheus's PromQL test scripts against our engine,
//! prints every failing case (file:line, query, what differed) and a closing
//! `N passed, M failed` line; exits 1 when any case failed.
//!
//! `lookout test rules FILE...` and `lookout check rules FILE...` are `promtool test rules`
//! and `promtool check rules`: the work is in [`rules::unittest`] and [`rules::check`], this
//! module prints as promtool prints (verdicts on stdout, failures on stderr).

use crate::cli::{CheckRulesArgs, LintArg, TestPromqlArgs, TestRulesArgs};
use crate::lifecycle::Exit;

pub fn promql(args: TestPromqlArgs) -> anyhow::Result<()> {
    let (mut passed, mut failed) = (0usize, 0usize);
    for f in &args.files {
        let r = promql::promqltest::run_file(f);
        for failure in &r.failures {
            println!("FAIL {failure}");
        }
        passed += r.passed;
        failed += r.failed();
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        return Err(Exit::silent(1));
    }
    Ok(())
}

/// `lookout test rules`: promtool's output, exit 1 when any file failed.
pub fn rules(args: TestRulesArgs) -> anyhow::Result<()> {
    let mut failed = false;
    for f in &args.files {
        println!("Unit Testing:  {}", f.display());
        let outcome = rules::unittest::run_file(f);
        for w in &outcome.warnings {
            eprintln!("{w}");
        }
        if outcome.errors.is_empty() {
            println!("  SUCCESS");
        } else {
            failed = true;
            eprintln!("  FAILED:");
            for e in &outcome.errors {
                eprintln!("{e}");
                println!();
            }
        }
        println!();
    }
    if failed {
        return Err(Exit::silent(1));
    }
    Ok(())
}

/// `lookout check rules`: promtool's output; exit 1 when any file is invalid, else 3 when a
/// lint check found something and `--lint-fatal` asks for it (duplicate rules are otherwise
/// reported and not fatal, as in promtool).
pub fn check_rules(args: CheckRulesArgs) -> anyhow::Result<()> {
    let lint = args.lint != LintArg::None;
    let (mut invalid, mut linted) = (false, false);
    for f in &args.files {
        println!("Checking {}", f.display());
        match rules::check::check_file(f) {
            rules::check::CheckOutcome::Ok {
                duplicates: Some(d),
                ..
            } if lint => {
                linted = true;
                eprintln!("  FAILED:");
                eprintln!("{d}");
            }
            rules::check::CheckOutcome::Ok { rules, .. } => {
                println!("  SUCCESS: {rules} rules found")
            }
            rules::check::CheckOutcome::Failed(errors) => {
                invalid = true;
                eprintln!("  FAILED:");
                for e in errors {
                    eprintln!("{e}");
                }
            }
        }
        println!();
    }
    if invalid {
        return Err(Exit::silent(1));
    }
    if linted && args.lint_fatal {
        return Err(Exit::silent(3));
    }
    Ok(())
}
