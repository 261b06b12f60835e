//! `bulwark generate man DIR` and `bulwark generate completions DIR`: the manual pages (one per
//! command, `bulwark.1`, `bulwark-serve.1`, ...) and the bash, zsh and fish completions, made
//! from the command line's own definition so they never drift from it. The .deb ships them.

use std::path::{Path, PathBuf};

use clap::{CommandFactory, Subcommand};

/// What to write.
#[derive(Debug, Subcommand)]
pub enum GenerateCommand {
    /// Manual pages (section 1) into DIR.
    Man { dir: PathBuf },
    /// Shell completions into DIR: bulwark.bash, _bulwark (zsh), bulwark.fish.
    Completions { dir: PathBuf },
}

pub fn run(command: &GenerateCommand) -> anyhow::Result<i32> {
    let cmd = super::Cli::command();
    match command {
        GenerateCommand::Man { dir } => {
            std::fs::create_dir_all(dir)?;
            man_pages(&cmd, "bulwark", dir)?;
        }
        GenerateCommand::Completions { dir } => {
            use clap_complete::Shell;
            std::fs::create_dir_all(dir)?;
            for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
                let mut cmd = cmd.clone();
                clap_complete::generate_to(shell, &mut cmd, "bulwark", dir)?;
            }
        }
    }
    Ok(0)
}

/// `cmd`'s page as `name.1`, then each visible subcommand's as `name-sub.1`.
fn man_pages(cmd: &clap::Command, name: &str, dir: &Path) -> anyhow::Result<()> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .render(&mut out)?;
    std::fs::write(dir.join(format!("{name}.1")), out)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set() && s.get_name() != "help")
    {
        man_pages(sub, &format!("{name}-{}", sub.get_name()), dir)?;
    }
    Ok(())
}
