//! Bytes kept for the life of the process: image paths and host paths are copied once
//! into large blocks that are never freed, so a path is a 16-byte copyable reference and a
//! tree of a million entries makes no allocation per path. A build is one process, and
//! what it keeps is about the size of its path listing.

use std::sync::Mutex;

/// Each block holds many strings; `calloc`ed, so its unused tail costs no memory.
const BLOCK: usize = 1 << 20;

static FREE: Mutex<Option<&'static mut [u8]>> = Mutex::new(None);

/// `text`, kept for good.
pub fn keep_str(text: &str) -> &'static str {
    std::str::from_utf8(keep_bytes(text.as_bytes())).expect("copied from a str")
}

/// `bytes`, kept for good.
pub fn keep_bytes(bytes: &[u8]) -> &'static [u8] {
    if bytes.is_empty() {
        return &[];
    }
    if bytes.len() > BLOCK / 16 {
        return Box::leak(bytes.into());
    }
    let mut free = FREE.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let block = match free.take() {
        Some(block) if block.len() >= bytes.len() => block,
        _ => Box::leak(vec![0u8; BLOCK].into_boxed_slice()),
    };
    let (head, tail) = block.split_at_mut(bytes.len());
    *free = Some(tail);
    head.copy_from_slice(bytes);
    head
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_text_reads_back_across_blocks() {
        let long = "x".repeat(BLOCK / 20);
        let kept: Vec<&str> =
            (0..100).map(|i| if i % 2 == 0 { keep_str(&long) } else { keep_str("a/b") }).collect();
        assert!(kept.iter().enumerate().all(|(i, k)| *k == if i % 2 == 0 { long.as_str() } else { "a/b" }));
        assert_eq!(keep_str(""), "");
    }
}
