//! What a build writes its outputs for: the whole image once, or with `--per-node` one
//! image per node of the client, each the part every node shares and then the node's
//! own part (its configs and an `/etc/smelt/node` stamp), as the kernel unpacks
//! archives back to back.

use std::collections::BTreeMap;

use crate::path::ImagePath;
use crate::plan::Plan;
use crate::tree::{Entry, Tree};

/// The trees outputs are written from.
pub enum Variants<'t> {
    Whole(&'t Tree),
    PerNode { shared: Box<Tree>, nodes: BTreeMap<String, Tree>, order: Vec<String> },
}

/// One image to write: the stem of its file names and the trees it is made of, in
/// the order they are laid one over the other.
pub struct Variant<'v> {
    pub stem: String,
    pub layers: Vec<&'v Tree>,
    /// The node it is for, with `--per-node`.
    pub node: Option<&'v str>,
}

impl<'t> Variants<'t> {
    pub fn new(plan: &Plan, tree: &'t Tree, per_node: bool) -> Variants<'t> {
        if !per_node {
            return Variants::Whole(tree);
        }
        let order: Vec<String> = plan.nodes().iter().map(|n| n.name.clone()).collect();
        let (shared, mut nodes) = tree
            .split_by_node(&order, |n| {
                ImagePath::new(&format!("{}/{n}", crate::network::NETWORK_DIR)).expect("valid")
            })
            .expect("entries of a tree pack again");
        let stamp = ImagePath::new("etc/smelt/node").expect("valid");
        for (name, part) in nodes.iter_mut() {
            for dir in ["etc", "etc/smelt"] {
                let at = ImagePath::new(dir).expect("valid");
                if let Some(e) = tree.get(&at) {
                    part.insert(&at, e).expect("a directory");
                }
            }
            part.insert(&stamp, Entry::bytes(format!("{name}\n").into_bytes(), 0o644, plan.time, "smelt"))
                .expect("a file");
        }
        Variants::PerNode { shared: Box::new(shared), nodes, order }
    }

    /// Every variant, in the inventory's order of nodes.
    pub fn list(&self, image: &str) -> Vec<Variant<'_>> {
        match self {
            Variants::Whole(tree) => {
                vec![Variant { stem: image.to_string(), layers: vec![tree], node: None }]
            }
            Variants::PerNode { shared, nodes, order } => order
                .iter()
                .map(|n| Variant {
                    stem: format!("{image}-{n}"),
                    layers: vec![shared, &nodes[n]],
                    node: Some(n),
                })
                .collect(),
        }
    }
}
