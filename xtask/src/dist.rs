//! `cargo xtask dist`: the release tarball.

use std::process::Command;

use anyhow::{Context, Result};

use crate::server_proc::build_release_server;
use crate::{root, run_cmd};

pub(crate) fn dist() -> Result<()> {
    let binary = build_release_server()?;
    let root = root();
    let version = env!("CARGO_PKG_VERSION");
    let name = format!("status-server-{version}-{}-linux", std::env::consts::ARCH);
    let stage = root.join("dist").join(&name);
    if stage.exists() {
        std::fs::remove_dir_all(&stage).with_context(|| format!("clean {}", stage.display()))?;
    }
    std::fs::create_dir_all(&stage)?;
    std::fs::copy(&binary, stage.join("status-server"))?;
    for file in ["README.md", "ARCHITECTURE.md"] {
        std::fs::copy(root.join(file), stage.join(file))?;
    }
    run_cmd(
        Command::new("cp")
            .arg("-r")
            .arg(root.join("docs"))
            .arg(&stage),
    )?;
    run_cmd(
        Command::new("sh")
            .arg("-c")
            .arg("find . -type f ! -name SHA256SUMS | sort | xargs sha256sum > SHA256SUMS")
            .current_dir(&stage),
    )?;
    let tarball = root.join("dist").join(format!("{name}.tar.gz"));
    run_cmd(
        Command::new("tar")
            .arg("-czf")
            .arg(&tarball)
            .arg("-C")
            .arg(root.join("dist"))
            .arg(&name),
    )?;
    run_cmd(Command::new("sha256sum").arg(&tarball))?;
    eprintln!("xtask: wrote {}", tarball.display());
    Ok(())
}
