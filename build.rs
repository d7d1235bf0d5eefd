//! Records the git commit the binary was built from, for `run.json`.
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=VISIONNET_GIT_COMMIT={commit}");
    // Rebuild when HEAD moves: HEAD itself (branch switch) and the branch it points to (commit).
    // Paths come from `git rev-parse --git-path`, since in a worktree `.git` is a file and a
    // missing path would make cargo rebuild the crate on every run.
    // A branch packed into `packed-refs` has no file of its own: watch that file instead.
    let watch = |name: &str| {
        let path =
            git(&["rev-parse", "--git-path", name]).filter(|p| std::path::Path::new(p).exists());
        if let Some(path) = path.or_else(|| git(&["rev-parse", "--git-path", "packed-refs"])) {
            println!("cargo:rerun-if-changed={path}");
        }
    };
    watch("HEAD");
    if let Some(reference) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watch(&reference);
    }
}
