//! Checksum files beside the outputs (`checksums = ["sha256", "md5"]` in image.toml), in
//! the format `sha256sum`/`md5sum` write and check and Ironic reads: `HEX  NAME`, one
//! file per output and kind (`ipa.tar.sha256`), published with the outputs.

use std::io::Write as _;

use md5::Digest as _;

use crate::archive::Written;
use crate::config::image::Checksum;
use crate::io::atomic::Pending;

/// The checksum files of the file outputs in `written` (not `dir` outputs), each under
/// a temporary name. sha256 is the one the writer computed; md5 reads the output once.
pub fn sidecars(written: &[Written], kinds: &[Checksum]) -> anyhow::Result<Vec<Pending>> {
    let mut files = Vec::new();
    for out in written {
        let Some(sha256) = &out.sha256 else { continue };
        let name =
            out.pending.dest().file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        for kind in kinds {
            let hex = match kind {
                Checksum::Sha256 => sha256.clone(),
                Checksum::Md5 => {
                    let mut hasher = md5::Md5::new();
                    let mut file = std::fs::File::open(out.pending.temp_path())?;
                    let mut buf = vec![0; 1 << 20];
                    loop {
                        let n = std::io::Read::read(&mut file, &mut buf)?;
                        if n == 0 {
                            break;
                        }
                        hasher.update(&buf[..n]);
                    }
                    hasher.finalize().iter().map(|b| format!("{b:02x}")).collect()
                }
            };
            let dest = out.pending.dest().with_file_name(format!("{name}.{}", kind.name()));
            let pending = Pending::new(&dest);
            writeln!(pending.create_file()?, "{hex}  {name}")?;
            files.push(pending);
        }
    }
    Ok(files)
}
