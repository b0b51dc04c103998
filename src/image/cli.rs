//! `podc image …` subcommands.

use super::{export, PullOptions, Store};
use crate::term::{json_safe, safe, safe_lines};
use anyhow::{bail, Result};
use clap::{Subcommand, ValueEnum};
use std::path::{Path, PathBuf};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

/// Manage the local image store.
#[derive(Debug, Subcommand)]
pub enum ImageCommand {
    /// Import an OCI layout directory, an OCI archive, a `docker save`
    /// archive, or a plain rootfs tarball (gzip, zstd or uncompressed).
    Import {
        /// File or directory to import.
        source: PathBuf,
        /// Name the image (NAME[:TAG]); needed to name a rootfs tarball.
        #[arg(long)]
        name: Option<String>,
    },
    /// Pull an image from an OCI distribution registry.
    Pull {
        /// [REGISTRY[:PORT]/]NAME[:TAG][@sha256:DIGEST]
        reference: String,
        /// Use plain http for this registry (also: "insecure" in <root>/registries.json).
        #[arg(long)]
        insecure: bool,
        /// Auth file (default: $REGISTRY_AUTH_FILE, containers auth.json, ~/.docker/config.json).
        #[arg(long)]
        authfile: Option<PathBuf>,
    },
    /// List images: NAME, TAG, DIGEST, SIZE, CREATED.
    Ls {
        #[arg(short = 'o', long = "output", value_enum, default_value = "table")]
        output: ListFormat,
    },
    /// Show an image's config (entrypoint, cmd, env, workdir, user) and layers, as JSON.
    Inspect { reference: String },
    /// Write the image's flattened root filesystem as a tarball.
    Export {
        reference: String,
        /// Output file, or - for stdout.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
    /// Remove images (a name untags; a digest removes the image).
    Rm {
        #[arg(required = true)]
        references: Vec<String>,
        /// Remove even if a pod uses it.
        #[arg(short, long)]
        force: bool,
    },
    /// Remove every image no pod uses, and unreferenced blobs and layers.
    Prune,
    /// Verify every blob and layer of the store.
    Check,
}

fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < units.len() {
        v /= 1000.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

fn split_name(full: &str) -> (String, String) {
    let r = super::Reference::parse(full).ok();
    match r {
        Some(r) => {
            let fam = r.familiar();
            let name = fam
                .rsplit_once(':')
                .filter(|(n, _)| !n.contains('@'))
                .map(|(n, _)| n.to_string());
            (
                name.unwrap_or(fam.clone()),
                r.tag.unwrap_or_else(|| "<none>".into()),
            )
        }
        None => (full.to_string(), "<none>".into()),
    }
}

/// Runs one `podc image` subcommand against the store under `root`.
/// Returns the process exit code. Error texts are made safe for a terminal
/// (they can quote bytes of a broken archive or a registry's answer).
pub fn run(cmd: ImageCommand, root: &Path) -> Result<i32> {
    run_inner(cmd, root).map_err(|e| anyhow::anyhow!("{}", safe_lines(&format!("{e:#}"))))
}

/// Pretty JSON of image data, with what a terminal would obey escaped.
fn print_json<T: serde::Serialize>(v: &T) -> Result<()> {
    println!("{}", json_safe(&serde_json::to_string_pretty(v)?));
    Ok(())
}

fn run_inner(cmd: ImageCommand, root: &Path) -> Result<i32> {
    let store = Store::open(root)?;
    match cmd {
        ImageCommand::Import { source, name } => {
            for img in store.import(&source, name.as_deref())? {
                let names: Vec<String> = img
                    .names
                    .iter()
                    .map(|n| split_name(n))
                    .map(|(a, b)| safe(&format!("{a}:{b}")).into_owned())
                    .collect();
                if names.is_empty() {
                    println!(
                        "imported {} (unnamed: use --name NAME[:TAG] to name it)",
                        img.digest
                    );
                } else {
                    println!("imported {} {}", img.digest, names.join(" "));
                }
            }
        }
        ImageCommand::Pull {
            reference,
            insecure,
            authfile,
        } => {
            let img = store.pull(
                &reference,
                &PullOptions {
                    insecure,
                    auth_file: authfile,
                },
            )?;
            println!("pulled {} {}", img.digest, safe(&reference));
        }
        ImageCommand::Ls { output } => {
            let images = store.list()?;
            match output {
                ListFormat::Json => {
                    let v: Vec<_> = images
                        .iter()
                        .map(|i| {
                            serde_json::json!({
                                "names": i.names, "digest": i.digest.as_str(), "size": i.size(), "created": i.created,
                            })
                        })
                        .collect();
                    print_json(&v)?;
                }
                ListFormat::Table => {
                    let mut rows = vec![[
                        "NAME".to_string(),
                        "TAG".into(),
                        "DIGEST".into(),
                        "SIZE".into(),
                        "CREATED".into(),
                    ]];
                    for i in &images {
                        let names = if i.names.is_empty() {
                            vec![("<none>".to_string(), "<none>".to_string())]
                        } else {
                            i.names.iter().map(|n| split_name(n)).collect()
                        };
                        for (n, t) in names {
                            rows.push(
                                [
                                    n,
                                    t,
                                    i.digest.short().to_string(),
                                    human(i.size()),
                                    i.created.clone().unwrap_or_default(),
                                ]
                                .map(|c| safe(&c).into_owned()),
                            );
                        }
                    }
                    let w: Vec<usize> = (0..5)
                        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
                        .collect();
                    for r in rows {
                        println!(
                            "{:<w0$}  {:<w1$}  {:<w2$}  {:<w3$}  {}",
                            r[0],
                            r[1],
                            r[2],
                            r[3],
                            r[4],
                            w0 = w[0],
                            w1 = w[1],
                            w2 = w[2],
                            w3 = w[3]
                        );
                    }
                }
            }
        }
        ImageCommand::Inspect { reference } => {
            print_json(&store.image(&reference)?)?;
        }
        ImageCommand::Export { reference, output } => {
            let img = store.image(&reference)?;
            export::export_to(&img, &output)?;
        }
        ImageCommand::Rm { references, force } => {
            let mut failed = false;
            for r in references {
                match store.remove(&r, force) {
                    Ok(img) => println!("removed {} ({})", safe(&r), img.digest),
                    Err(e) => {
                        eprintln!("error: {}", safe_lines(&format!("{e:#}")));
                        failed = true;
                    }
                }
            }
            return Ok(if failed { 1 } else { 0 });
        }
        ImageCommand::Prune => {
            for img in store.prune()? {
                println!("removed {}", img.digest);
            }
        }
        ImageCommand::Check => {
            let problems = store.check()?;
            if problems.is_empty() {
                println!("store is consistent");
            } else {
                for p in &problems {
                    eprintln!("{}", safe(p));
                }
                bail!("{} problem(s) in the image store", problems.len());
            }
        }
    }
    Ok(0)
}
