use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// podc: compile Kubernetes Pod manifests into plain systemd units.
#[derive(Parser)]
#[command(name = "podc", version)]
struct Cli {
    /// State directory (image store, pod state).
    #[arg(
        long,
        global = true,
        env = "PODC_ROOT",
        default_value = "/var/lib/podc"
    )]
    root: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Manage images: import, pull, ls, inspect, export, rm, prune.
    #[command(subcommand)]
    Image(podc::image::cli::ImageCommand),
}

fn main() {
    let cli = Cli::parse();
    let code = match cli.command {
        Command::Image(cmd) => podc::image::cli::run(cmd, &cli.root),
    };
    match code {
        Ok(c) => std::process::exit(c),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(1);
        }
    }
}
