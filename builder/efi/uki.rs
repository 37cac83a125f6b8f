//! A unified kernel image: systemd's EFI stub with the kernel, the initramfs, the
//! command line, os-release and the kernel's release added as sections, laid out as
//! systemd's `ukify` lays them out (`.osrel`, `.cmdline`, `.uname`, `.initrd`, then
//! `.linux`; each at the next section-aligned address, file-aligned on disk, readable
//! data — `.linux` code). The stub boots firmware-direct; signed whole, the firmware
//! checks the kernel, its command line and the initramfs together.

use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use super::pe::{round_up, Pe, Section};

/// systemd-boot-efi's stub for x86-64, and the package that has it.
pub const STUB: (&str, &str) = ("/usr/lib/systemd/boot/efi/linuxx64.efi.stub", "systemd-boot-efi");

/// A stub that cannot take the sections.
#[derive(Debug, thiserror::Error)]
pub enum BadStub {
    #[error("{}: the EFI stub is signed already, by {signer}; a unified kernel image is signed whole, so its stub must be unsigned (systemd-boot-efi's linuxx64.efi.stub is)", path.display())]
    Signed { path: PathBuf, signer: String },
    #[error("{}: no room in the EFI stub's headers for {more} more sections", path.display())]
    NoRoom { path: PathBuf, more: usize },
}

/// What goes into a section: bytes made here, or a file streamed from disk.
pub enum Content<'a> {
    Bytes(Vec<u8>),
    File(&'a Path),
}

impl Content<'_> {
    fn len(&self) -> anyhow::Result<u64> {
        Ok(match self {
            Content::Bytes(b) => b.len() as u64,
            Content::File(p) => {
                std::fs::metadata(p).with_context(|| format!("reading {}", p.display()))?.len()
            }
        })
    }
}

/// The parts of a unified kernel image.
pub struct Parts<'a> {
    pub os_release: Vec<u8>,
    pub cmdline: String,
    pub uname: String,
    pub initrd: &'a Path,
    pub linux: &'a Path,
}

/// Writes the UKI of `parts` on `stub` to `out` (a new, empty file); returns its size.
pub fn write(stub: &Path, parts: &Parts, out: &mut std::fs::File) -> anyhow::Result<u64> {
    let mut pe = Pe::read(stub)?;
    if pe.certificate_table().is_some() {
        let digest = super::authenticode::digest(&pe)?;
        let signers: Vec<String> =
            super::authenticode::signatures(&pe, &digest)?.into_iter().map(|f| f.signer).collect();
        return Err(BadStub::Signed { path: stub.to_path_buf(), signer: signers.join("; ") }.into());
    }
    let kernel = Pe::read(parts.linux)
        .with_context(|| format!("the kernel {} has no EFI stub", parts.linux.display()))?;
    let sections: [(&str, Content, u32); 5] = [
        (".osrel", Content::Bytes(parts.os_release.clone()), Section::DATA),
        (".cmdline", Content::Bytes(parts.cmdline.clone().into_bytes()), Section::DATA),
        (".uname", Content::Bytes(parts.uname.clone().into_bytes()), Section::DATA),
        (".initrd", Content::File(parts.initrd), Section::DATA),
        (".linux", Content::File(parts.linux), Section::CODE),
    ];
    let (file_align, section_align) = (u64::from(pe.file_alignment()), u64::from(pe.section_alignment()));
    // All the space before the first section's data can hold headers.
    let size_of_headers = round_up(pe.headers.len() as u64, file_align) as usize;
    if pe.section_table_end() + sections.len() * Section::SIZE > size_of_headers {
        return Err(BadStub::NoRoom { path: stub.to_path_buf(), more: sections.len() }.into());
    }
    pe.headers.resize(size_of_headers, 0);
    let stub_end =
        pe.sections.iter().map(|s| u64::from(s.raw_offset) + u64::from(s.raw_size)).max().unwrap_or(0);
    let mut file_end = round_up(stub_end.max(size_of_headers as u64), file_align);
    let mut added = Vec::new();
    for (name, content, characteristics) in &sections {
        let len = content.len()?;
        let last = pe.sections.last().context("the stub has no sections")?;
        let mut virtual_size = len;
        if *name == ".linux" {
            // The kernel's own image size, which is more than its file when it has bss.
            virtual_size = virtual_size.max(kernel.size_of_image().into());
        }
        let s = Section {
            name: name.to_string(),
            virtual_size: u32::try_from(virtual_size).context("a section over 4 GiB")?,
            virtual_address: round_up(
                u64::from(last.virtual_address) + u64::from(last.virtual_size),
                section_align,
            ) as u32,
            raw_size: round_up(len, file_align) as u32,
            raw_offset: u32::try_from(file_end).context("an image over 4 GiB")?,
            characteristics: *characteristics,
        };
        file_end += u64::from(s.raw_size);
        let at = pe.section_table_end();
        pe.headers[at..at + Section::SIZE].copy_from_slice(&s.encode());
        pe.sections.push(s.clone());
        added.push((s, content));
    }
    let (optional, coff) = (pe.optional, pe.coff);
    pe.set_u16(coff + 2, pe.sections.len() as u16);
    // The symbol table, if the stub kept one, is not carried over.
    pe.set_u32(coff + 8, 0);
    pe.set_u32(coff + 12, 0);
    let initialized = pe.u32_at(optional + 8) + added.iter().map(|(s, _)| s.virtual_size).sum::<u32>();
    pe.set_u32(optional + 8, initialized);
    let last = pe.sections.last().unwrap();
    let size_of_image =
        round_up(u64::from(last.virtual_address) + u64::from(last.virtual_size), section_align);
    pe.set_u32(optional + 56, size_of_image as u32);
    pe.set_u32(optional + 60, size_of_headers as u32);
    pe.set_u32(pe.checksum_at(), 0);

    let mut w = std::io::BufWriter::new(out);
    w.write_all(&pe.headers)?;
    let mut stub_file = std::fs::File::open(stub)?;
    stub_file.seek(SeekFrom::Start(size_of_headers as u64))?;
    let mut written = size_of_headers as u64;
    written += std::io::copy(&mut (&mut stub_file).take(stub_end.saturating_sub(written)), &mut w)?;
    for (s, content) in added {
        pad(&mut w, u64::from(s.raw_offset) - written)?;
        let n = match content {
            Content::Bytes(b) => {
                w.write_all(b)?;
                b.len() as u64
            }
            Content::File(p) => {
                let mut f = std::fs::File::open(p).with_context(|| format!("reading {}", p.display()))?;
                std::io::copy(&mut f, &mut w)?
            }
        };
        pad(&mut w, u64::from(s.raw_size) - n)?;
        written = u64::from(s.raw_offset) + u64::from(s.raw_size);
    }
    w.flush()?;
    Ok(written)
}

fn pad(w: &mut impl Write, n: u64) -> std::io::Result<()> {
    std::io::copy(&mut std::io::repeat(0).take(n), w).map(|_| ())
}

/// The release of an x86 kernel (`uname -r`), from the version string its real-mode
/// header points to (the Linux boot protocol's `kernel_version`).
pub fn kernel_release(path: &Path) -> anyhow::Result<String> {
    let mut f = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let mut head = vec![0u8; 0x10000];
    let n = f.read(&mut head)?;
    head.truncate(n);
    anyhow::ensure!(head.get(0x202..0x206) == Some(b"HdrS"), "{}: no Linux boot header", path.display());
    let offset = u16::from_le_bytes([head[0x20e], head[0x20f]]) as usize + 0x200;
    let text = head.get(offset..).context("kernel version past the header")?;
    let end = text.iter().position(|b| *b == 0 || *b == b' ').unwrap_or(text.len());
    Ok(String::from_utf8_lossy(&text[..end]).into_owned())
}
