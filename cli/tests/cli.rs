//! The `regstat` binary as a user first meets it: `--help`. (The commands themselves are
//! tested against real services in `worker/tests/it`, the workspace's system suite, which
//! runs this binary too; this test also makes `cargo test --workspace` build it.)
#![allow(clippy::unwrap_used, missing_docs)]

use std::process::Command;

#[test]
fn help_introduces_the_operator_command_line_and_lists_every_command() {
    let output = Command::new(env!("CARGO_BIN_EXE_regstat"))
        .arg("--help")
        .env_remove("REGSTAT_CONFIG")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let help = String::from_utf8(output.stdout).unwrap();
    assert!(
        help.starts_with("regstat's operator command line"),
        "the CLI introduces itself as the CLI:\n{help}"
    );
    for command in ["migrate", "status", "dlq", "report", "ledger", "sync"] {
        assert!(
            help.lines().any(|l| l.trim_start().starts_with(command)),
            "`{command}` missing from:\n{help}"
        );
    }
}
