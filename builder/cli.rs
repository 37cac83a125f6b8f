//! The command line, as SPEC.md defines it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "smelt",
    version,
    about = "Build reproducible Linux initramfs and ISO images from ordered elements, rootless, with size budgets",
    help_expected = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Build the image's outputs and report.json
    Build(BuildArgs),
    /// Show what a build would do (elements, hooks, params, outputs, budget) without building
    Plan(BuildArgs),
    /// List the elements on the element path, or show one
    Elements {
        #[command(subcommand)]
        what: Option<ElementsCmd>,
        /// Directory of elements searched before the built-in ones (repeatable)
        #[arg(long = "elements-path", value_name = "DIR", global = true)]
        elements_path: Vec<PathBuf>,
        /// Print JSON on stdout
        #[arg(long, global = true)]
        json: bool,
    },
    /// Validate an image.toml, client.toml or size-budget.toml, reporting every problem
    Check {
        /// The file to check
        file: PathBuf,
    },
    /// List what an initramfs (any compression, concatenated archives), ISO or build manifest holds
    Inspect {
        /// The initramfs, ISO or manifest.jsonl.zst
        file: PathBuf,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Show what grew, shrank, appeared and vanished between two outputs
    Diff {
        /// The older output
        old: PathBuf,
        /// The newer output
        new: PathBuf,
        /// Print JSON on stdout
        #[arg(long)]
        json: bool,
    },
    /// Serve a directory (a NAME.netboot tree) over HTTP and TFTP, showing each node's fetches
    Serve {
        /// The directory to serve
        dir: PathBuf,
        /// Address and port to listen on
        #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8080")]
        listen: std::net::SocketAddr,
        /// Serve it by TFTP too, on this address (0.0.0.0:69 is TFTP's port, which needs root)
        #[arg(long, value_name = "ADDR:PORT")]
        tftp: Option<std::net::SocketAddr>,
    },
    /// Deliver the outputs to the client's nodes through their BMCs (Redfish): media, one-time boot, power, check-in
    Deliver {
        /// The OUTDIR of a build
        outdir: PathBuf,
        /// The client inventory, with each node's bmc
        #[arg(long, value_name = "CLIENT.toml")]
        client: PathBuf,
        /// Only this node (repeatable; default: every node)
        #[arg(long = "node", value_name = "NAME")]
        nodes: Vec<String>,
        /// What the nodes boot from
        #[arg(long, value_enum, default_value = "iso")]
        media: crate::ops::deliver::Media,
        /// Where smelt serves OUTDIR to the BMCs and hears check-ins
        #[arg(long, value_name = "ADDR:PORT", default_value = "0.0.0.0:8470")]
        serve: std::net::SocketAddr,
        /// BMCs fetch from this URL instead (a web server that has OUTDIR's files)
        #[arg(long, value_name = "URL")]
        base_url: Option<String>,
        /// How long to wait for every node to check in (90s, 20m, 1h)
        #[arg(long, value_name = "DURATION", default_value = "20m", value_parser = crate::ops::deliver::parse_duration)]
        wait: std::time::Duration,
        /// Leave the media inserted and the boot override set after a node checks in
        #[arg(long)]
        keep_media: bool,
        /// Print the Redfish requests per node without sending them (passwords masked)
        #[arg(long)]
        dry_run: bool,
    },
    /// Pack every input of a build (its smelt.lock) into one OCI layout that `smelt build --from` rebuilds from, offline, anywhere
    Bundle(BundleArgs),
    /// Print a shell completion script on stdout: `source <(smelt completions bash)`
    Completions {
        /// The shell to complete in
        shell: clap_complete::Shell,
    },
    /// Print a manual page (roff) on stdout: `smelt man > smelt.1`, `smelt man build > smelt-build.1`
    Man {
        /// The subcommand whose page to print (default: smelt's own)
        command: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum ElementsCmd {
    /// Every element on the path, one line each
    List,
    /// One element's manifest, params with defaults, files and hooks
    Show {
        /// The element's name
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// The image.toml to build (not with --from, whose bundle holds it)
    #[arg(required_unless_present = "from")]
    pub image: Option<PathBuf>,
    /// Rebuild from a bundle (`smelt bundle`: a layout, its tar, or oci://HOST/REPO:TAG): every input from it, checked, with no network
    #[arg(long, value_name = "BUNDLE", conflicts_with = "image")]
    pub from: Option<PathBuf>,
    /// With --from: only a bundle signed by this Ed25519 public key (KEY.pub)
    #[arg(long, value_name = "KEY.pub", requires = "from")]
    pub verify: Option<PathBuf>,
    /// Client inventory (client.toml) rendered into templates
    #[arg(long, value_name = "CLIENT.toml")]
    pub client: Option<PathBuf>,
    /// Directory the outputs and report.json are written to
    #[arg(short = 'o', long = "output-dir", value_name = "OUTDIR", default_value = "out")]
    pub outdir: PathBuf,
    /// Directory of elements searched before SMELT_ELEMENTS_PATH and the built-in ones (repeatable)
    #[arg(long = "elements-path", value_name = "DIR")]
    pub elements_path: Vec<PathBuf>,
    /// Set an element's param, overriding image.toml (repeatable); VALUE is TOML or plain text
    #[arg(long = "set", value_name = "ELEMENT.PARAM=VALUE")]
    pub sets: Vec<String>,
    /// One image per node of the client
    #[arg(long)]
    pub per_node: bool,
    /// Also write manifest.jsonl.zst: every entry (path, type, mode, owner, size, target, element)
    #[arg(long)]
    pub manifest: bool,
    /// Reach no network: hooks run in a namespace without one
    #[arg(long)]
    pub offline: bool,
    /// A shared cache in an OCI registry: fetch this build's inputs from it, push what was fetched
    #[arg(long, value_name = "oci://HOST/REPO", env = "SMELT_CACHE")]
    pub cache: Option<String>,
    /// The CA that signed the registry's TLS certificate (default: the system's CAs)
    #[arg(long, value_name = "CA.pem", env = "SMELT_REGISTRY_CA")]
    pub registry_ca: Option<PathBuf>,
    /// Clamp every timestamp to this time (seconds since 1970) for reproducible output
    #[arg(long, value_name = "N", env = "SOURCE_DATE_EPOCH")]
    pub source_date_epoch: Option<i64>,
    /// Print the report (build) or plan as JSON on stdout
    #[arg(long)]
    pub json: bool,
    /// Print only errors and warnings
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print each element's and hook's work
    #[arg(short, long)]
    pub verbose: bool,
}

#[derive(Args, Debug)]
pub struct BundleArgs {
    /// The image.toml that was built
    pub image: PathBuf,
    /// The client inventory the build had
    #[arg(long, value_name = "CLIENT.toml")]
    pub client: Option<PathBuf>,
    /// The element directories the build had (repeatable)
    #[arg(long = "elements-path", value_name = "DIR")]
    pub elements_path: Vec<PathBuf>,
    /// The build's lock
    #[arg(long, value_name = "FILE", default_value = "out/smelt.lock")]
    pub lock: PathBuf,
    /// Where to write the bundle: a directory (OCI layout), or FILE.tar
    #[arg(short = 'o', long = "output", value_name = "DIR|FILE.tar", required_unless_present = "push")]
    pub out: Option<PathBuf>,
    /// Push the bundle (and its signature) to a registry
    #[arg(long, value_name = "oci://HOST/REPO:TAG")]
    pub push: Option<String>,
    /// The CA that signed the registry's TLS certificate (default: the system's CAs)
    #[arg(long, value_name = "CA.pem", env = "SMELT_REGISTRY_CA")]
    pub registry_ca: Option<PathBuf>,
    /// The bundle's creation time (seconds since 1970); default: the build's
    #[arg(long, value_name = "N", env = "SOURCE_DATE_EPOCH")]
    pub source_date_epoch: Option<i64>,
    /// Sign the bundle with this Ed25519 key (OpenSSH private key file, as ssh-keygen -t ed25519 makes)
    #[arg(long, value_name = "KEY")]
    pub sign: Option<PathBuf>,
}

impl BundleArgs {
    pub fn options(self) -> crate::ops::bundle::BundleOptions {
        crate::ops::bundle::BundleOptions {
            image: self.image,
            client: self.client,
            elements_path: self.elements_path,
            lock: self.lock,
            out: self.out,
            push: self.push,
            registry_ca: self.registry_ca,
            source_date_epoch: self.source_date_epoch,
            sign: self.sign,
        }
    }
}
