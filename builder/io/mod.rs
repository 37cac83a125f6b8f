//! Byte plumbing shared by the archive writers: compression, counting and hashing,
//! atomic publication, the output directory's lock. Nothing here knows about images or configuration.

pub mod ahead;
pub mod atomic;
pub mod compress;
pub mod count;
pub mod gzip;
pub mod outdir;
pub mod prefetch;
pub mod source;
