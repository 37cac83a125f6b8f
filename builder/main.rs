//! The `smelt` command: parse, dispatch to one operation, print, exit with SPEC's codes
//! (0 ok, 1 error, 2 bad command line, 3 over budget).

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use smelt::budget::OverBudget;
use smelt::cli::{BuildArgs, Cli, Command, ElementsCmd};
use smelt::config::source::Diagnostics;
use smelt::ops;
use smelt::plan::{BadCommandLine, Inputs};
use smelt::ui::{Ui, Verbosity};

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = smelt::cleanup::on_signals() {
        eprintln!("smelt: warning: cannot catch Ctrl-C ({e}): a stopped build may leave temporary files");
    }
    match run(cli) {
        Ok(out) => {
            let _ = std::io::stdout().write_all(out.as_bytes());
            ExitCode::SUCCESS
        }
        Err(err) => {
            if let Some(d) = err.downcast_ref::<Diagnostics>() {
                eprintln!("{d}");
            } else {
                eprintln!("smelt: {err:#}");
            }
            if err.downcast_ref::<OverBudget>().is_some() {
                ExitCode::from(3)
            } else if err.downcast_ref::<BadCommandLine>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

/// Runs the command and returns what goes to stdout.
fn run(cli: Cli) -> anyhow::Result<String> {
    match cli.command {
        Command::Build(args) => {
            let ui = Ui::new(verbosity(&args));
            let opts = ops::build::BuildOptions {
                inputs: inputs(&args),
                outdir: args.outdir.clone(),
                per_node: args.per_node,
                manifest: args.manifest,
                from: args.from.clone(),
                verify: args.verify.clone(),
                shared_cache: args.cache.clone(),
                registry_ca: args.registry_ca.clone(),
            };
            ops::build::build(&opts, &ui)?;
            if !args.json {
                return Ok(String::new());
            }
            // The report as written, entries included.
            let path = args.outdir.join("report.json");
            std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))
        }
        Command::Plan(args) if args.from.is_some() => {
            Err(BadCommandLine("smelt plan reads an image.toml; --from is for smelt build".into()).into())
        }
        Command::Plan(args) => ops::plan::plan(&inputs(&args), args.json),
        Command::Bundle(args) => ops::bundle::bundle(&args.options(), &Ui::new(Verbosity::Normal)),
        Command::Elements { what, elements_path, json } => match what {
            None | Some(ElementsCmd::List) => ops::elements::list(&elements_path, json),
            Some(ElementsCmd::Show { name }) => ops::elements::show(&elements_path, &name, json),
        },
        Command::Check { file } => ops::check::check(&file),
        Command::Inspect { file, json } => ops::inspect::inspect(&file, json),
        Command::Diff { old, new, json } => ops::diff::diff(&old, &new, json),
        Command::Serve { dir, listen, tftp } => {
            ops::serve::serve(&ops::serve::ServeOptions { dir, listen, tftp })
        }
        Command::Deliver { outdir, client, nodes, media, serve, base_url, wait, keep_media, dry_run } => {
            ops::deliver::deliver(&ops::deliver::DeliverOptions {
                outdir,
                client,
                nodes,
                media,
                serve,
                base_url,
                wait,
                keep_media,
                dry_run,
            })
        }
        Command::Completions { shell } => ops::docs::completions(shell),
        Command::Man { command } => ops::docs::man(command.as_deref()),
    }
}

fn inputs(args: &BuildArgs) -> Inputs {
    Inputs {
        image: args.image.clone().unwrap_or_default(),
        client: args.client.clone(),
        elements_path: args.elements_path.clone(),
        sets: args.sets.clone(),
        offline: args.offline,
        source_date_epoch: args.source_date_epoch,
    }
}

fn verbosity(args: &BuildArgs) -> Verbosity {
    if args.quiet || args.json {
        Verbosity::Quiet
    } else if args.verbose {
        Verbosity::Verbose
    } else {
        Verbosity::Normal
    }
}
