// Records the git commit the binaries were built from, for the results' provenance.
fn main() {
    let commit = std::process::Command::new("git")
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok());
    if let Some(commit) = commit {
        println!("cargo:rustc-env=GANEM_GIT_COMMIT={}", commit.trim());
    }
    // Any edit to the sources or profiles can turn a clean tree dirty, so it re-runs this too.
    for path in [
        "../.git/HEAD",
        "../.git/refs/heads",
        "../.git/index",
        "src",
        "../ganem-core/src",
        "../configs",
    ] {
        println!("cargo:rerun-if-changed={path}");
    }
}
