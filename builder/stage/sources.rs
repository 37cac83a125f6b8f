//! DIB's `source-repository-*` files: `<name> <type> <destination> <location> [<ref>]`,
//! one a line, environment variables expanded as DIB's eval does. Types `file`, `tar`
//! and `git` from local paths (or DIB_REPOLOCATION_<name>); `package` is left to
//! package-installs. Sources land in the image before the install phases run.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context as _};

use crate::element::{Element, FileKind, Origin};
use crate::path::ImagePath;
use crate::tree::disk::{add_dir, root_entry, Owners};
use crate::tree::Tree;

/// Places every repository an element declares; returns how many entries it added.
pub fn apply(tree: &mut Tree, element: &Element, work: &Path) -> anyhow::Result<usize> {
    let mut count = 0;
    for f in element.files.iter().filter(|f| !f.rel.contains('/') && f.rel.starts_with("source-repository-"))
    {
        let FileKind::File(src) = &f.kind else { continue };
        let text = String::from_utf8_lossy(&src.read_all()?).into_owned();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let place = format!("element `{}`: {} line {}", element.name, f.rel, n + 1);
            let words: Vec<String> = line.split_whitespace().map(expand).collect();
            if words.len() < 4 {
                bail!("{place}: write `<name> <type> <destination> <location> [<ref>]`");
            }
            let (name, kind, dest) = (&words[0], &words[1], &words[2]);
            let var = |prefix: &str| std::env::var(format!("{prefix}{}", name.replace('-', "_"))).ok();
            let location = var("DIB_REPOLOCATION_").unwrap_or_else(|| words[3].clone());
            let reference = var("DIB_REPOREF_").or_else(|| words.get(4).cloned());
            let location = local(element, &location);
            let dest = ImagePath::new(dest).map_err(|e| anyhow::anyhow!("{place}: destination {e}"))?;
            let scratch = work.join("sources").join(&element.name).join(name);
            count += match kind.as_str() {
                "file" => add_file(tree, &element.name, &location, &dest).with_context(|| place.clone())?,
                "tar" => {
                    tar(tree, &element.name, &location, reference.as_deref().unwrap_or("."), &dest, &scratch)
                        .with_context(|| place.clone())?
                }
                "git" => git(tree, &element.name, &location, reference.as_deref(), &dest, &scratch)
                    .with_context(|| place.clone())?,
                "package" => 0,
                other => bail!("{place}: unknown type `{other}`: use git, tar, file or package"),
            };
        }
    }
    Ok(count)
}

/// `$VAR` and `${VAR}` from the environment, as DIB's eval of the line would.
fn expand(word: &str) -> String {
    let mut out = String::new();
    let mut rest = word;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        let (name, tail) = match after.strip_prefix('{') {
            Some(b) => match b.find('}') {
                Some(end) => (&b[..end], &b[end + 1..]),
                None => (b, ""),
            },
            None => {
                let end =
                    after.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(after.len());
                (&after[..end], &after[end..])
            }
        };
        out.push_str(&std::env::var(name).unwrap_or_default());
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// A location on this machine: absolute, `file://`, or relative to the element.
fn local(element: &Element, location: &str) -> PathBuf {
    let location = location.strip_prefix("file://").unwrap_or(location);
    match &element.origin {
        Origin::Dir(dir) if !location.starts_with('/') => dir.join(location),
        _ => PathBuf::from(location),
    }
}

fn add_file(tree: &mut Tree, element: &str, location: &Path, dest: &ImagePath) -> anyhow::Result<usize> {
    tree.insert(dest, root_entry(location, element)?)?;
    Ok(1)
}

/// A tarball (plain, gz, xz or zst): `.` for all of it, `*` for what is inside its
/// top directories, or a subdirectory for that directory's contents.
fn tar(
    tree: &mut Tree,
    element: &str,
    location: &Path,
    reference: &str,
    dest: &ImagePath,
    scratch: &Path,
) -> anyhow::Result<usize> {
    use std::io::{BufReader, Read};
    let mut magic = [0u8; 6];
    let n = std::fs::File::open(location)
        .with_context(|| format!("reading {}", location.display()))?
        .read(&mut magic)?;
    let input = BufReader::new(std::fs::File::open(location)?);
    let reader: Box<dyn Read> = match &magic[..n] {
        [0x1f, 0x8b, ..] => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        [0xfd, b'7', b'z', b'X', b'Z', 0] => Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(input)),
        [0x28, 0xb5, 0x2f, 0xfd, ..] => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
        _ => Box::new(input),
    };
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch)?;
    let mut archive = tar::Archive::new(reader);
    archive.set_preserve_permissions(true);
    for member in archive.entries()? {
        let mut member = member?;
        let path = member.path()?.to_string_lossy().trim_start_matches("./").to_string();
        let kept: Option<String> = match reference {
            "." => Some(path.clone()),
            "*" => path.split_once('/').map(|(_, rest)| rest.to_string()).filter(|r| !r.is_empty()),
            sub => path
                .strip_prefix(&format!("{}/", sub.trim_matches('/')))
                .map(String::from)
                .filter(|r| !r.is_empty()),
        };
        let Some(rel) = kept else { continue };
        let rel = ImagePath::new(&rel)?;
        let target = scratch.join(rel.as_str());
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        member.unpack(&target).with_context(|| format!("unpacking {path} from {}", location.display()))?;
    }
    add_dir(tree, scratch, dest, element, Owners::Root)
}

/// A git repository on this machine, checked out at `reference` (default: master, else
/// the repository's HEAD). Its `.git` stays out of the image: it changes with every
/// clone and would make the image's bytes differ.
fn git(
    tree: &mut Tree,
    element: &str,
    location: &Path,
    reference: Option<&str>,
    dest: &ImagePath,
    scratch: &Path,
) -> anyhow::Result<usize> {
    let _ = std::fs::remove_dir_all(scratch);
    std::fs::create_dir_all(scratch.parent().expect("has a parent"))?;
    let run = |args: &[&str]| -> anyhow::Result<()> {
        let out =
            crate::cleanup::output(Command::new("git").args(args)).context("running git; install it")?;
        if !out.status.success() {
            bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
        }
        Ok(())
    };
    let scratch_s = scratch.to_string_lossy();
    run(&["clone", "--quiet", "--no-hardlinks", &location.to_string_lossy(), &scratch_s])?;
    let wanted = reference.unwrap_or("master");
    let checked = run(&["-C", &scratch_s, "checkout", "--quiet", wanted]);
    if let Err(e) = checked {
        if reference.is_some() {
            return Err(e);
        }
    }
    add_dir(tree, scratch, dest, element, Owners::Root)
}

#[cfg(test)]
mod tests {
    #[test]
    fn expands_like_eval() {
        std::env::set_var("SMELT_TEST_REPO", "/srv/repo");
        assert_eq!(super::expand("$SMELT_TEST_REPO/x"), "/srv/repo/x");
        assert_eq!(super::expand("${SMELT_TEST_REPO}y"), "/srv/repoy");
        assert_eq!(super::expand("plain"), "plain");
    }
}
