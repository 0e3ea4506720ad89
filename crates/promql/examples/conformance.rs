//! Prints per-file conformance counts and the failures of the files given (or all).
fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let verbose = args.iter().any(|a| a == "-v");
    let mut tp = 0;
    let mut tf = 0;
    for f in args.iter().filter(|a| *a != "-v") {
        let r = promql::promqltest::run_file(std::path::Path::new(f));
        if verbose {
            for x in &r.failures {
                println!("{x}");
            }
        }
        println!("{f}: {} passed, {} failed", r.passed, r.failed());
        tp += r.passed;
        tf += r.failed();
    }
    println!("{tp} passed, {tf} failed");
}
