//! One operation per command, each a plain function over an options value so it can be
//! called and tested without the command line.

pub mod build;
pub mod bundle;
pub mod check;
pub mod deliver;
pub mod diff;
pub mod docs;
pub mod elements;
pub mod inspect;
pub mod plan;
pub mod serve;
