//! `lookout test promql FILE...`: runs Prometheus's PromQL test scripts against our engine,
//! prints every failing case (file:line, query, what differed) and a closing
//! `N passed, M failed` line; exits 1 when any case failed. A later `test rules` joins here.

use crate::cli::TestPromqlArgs;
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
