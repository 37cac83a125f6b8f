//! The command line's own documentation, shell completions and manual pages, made from
//! the clap definition, so they never drift from what `smelt` accepts.

use anyhow::bail;
use clap::CommandFactory as _;

use crate::cli::Cli;

/// The completion script for `shell`.
pub fn completions(shell: clap_complete::Shell) -> anyhow::Result<String> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "smelt", &mut out);
    Ok(String::from_utf8(out)?)
}

/// The manual page of smelt (`smelt(1)`, listing the subcommands) or of one subcommand
/// (`smelt-build(1)`, as git and cargo name theirs).
pub fn man(command: Option<&str>) -> anyhow::Result<String> {
    let cli = Cli::command();
    let page = match command {
        None => cli,
        Some(name) => match cli.find_subcommand(name) {
            Some(sub) => sub
                .clone()
                .display_name(format!("smelt-{name}"))
                .bin_name(format!("smelt {name}"))
                .version(env!("CARGO_PKG_VERSION")),
            None => {
                let names: Vec<&str> = cli.get_subcommands().map(|s| s.get_name()).collect();
                bail!("no command `{name}`: smelt man takes one of {}", names.join(", "))
            }
        },
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page).render(&mut out)?;
    Ok(String::from_utf8(out)?)
}
