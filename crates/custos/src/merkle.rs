//! A Merkle tree over the payload manifest, hashed as RFC 6962 (Certificate Transparency) and
//! RFC 9162 §2.1 define it: leaf = SHA-256(0x00 ‖ entry), node = SHA-256(0x01 ‖ left ‖ right),
//! the tree of n leaves split at the largest power of two below n. Its root sits in bag-info.txt,
//! which the tag manifest covers and the signature signs; an audit path then proves one
//! recording belongs to the signed export without handing over the rest (`custos prove`).
//!
//! The leaves are the lines of `manifest-sha256.txt`, `<sha256>  <path>` without the newline,
//! sorted by path (byte order).
//!
//! ```
//! use custos::merkle::{audit_path, leaf_hash, root, root_from_path};
//! let leaves: Vec<String> = (0..5).map(|i| format!("{i:064x}  data/f{i}")).collect();
//! let r = root(&leaves);
//! let path = audit_path(&leaves, 3);
//! assert_eq!(root_from_path(leaf_hash(&leaves[3]), 3, 5, &path), Some(r));
//! ```

use crate::digest::Sha256;

/// SHA-256(0x00 ‖ entry).
pub fn leaf_hash(entry: &str) -> Sha256 {
    let mut b = Vec::with_capacity(entry.len() + 1);
    b.push(0);
    b.extend_from_slice(entry.as_bytes());
    Sha256::of(&b)
}

/// SHA-256(0x01 ‖ left ‖ right).
pub fn node_hash(left: Sha256, right: Sha256) -> Sha256 {
    let mut b = [0u8; 65];
    b[0] = 1;
    b[1..33].copy_from_slice(&left.bytes());
    b[33..].copy_from_slice(&right.bytes());
    Sha256::of(&b)
}

/// The largest power of two smaller than `n` (n ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

fn subtree(leaves: &[Sha256]) -> Sha256 {
    match leaves.len() {
        0 => Sha256::of(b""),
        1 => leaves[0],
        n => {
            let k = split(n);
            node_hash(subtree(&leaves[..k]), subtree(&leaves[k..]))
        }
    }
}

/// The tree head of `entries` (SHA-256 of nothing for none).
pub fn root(entries: &[String]) -> Sha256 {
    let leaves: Vec<Sha256> = entries.iter().map(|e| leaf_hash(e)).collect();
    subtree(&leaves)
}

/// The tree head of leaves already hashed with [`leaf_hash`].
pub fn root_of_leaves(leaves: &[Sha256]) -> Sha256 {
    subtree(leaves)
}

/// The tree head of leaves given one at a time, in order, holding only the roots of the
/// perfect subtrees so far (at most one per bit of the count): the same head as
/// [`root_of_leaves`] over all of them, in memory that does not grow with the payload.
#[derive(Default)]
pub struct Head {
    /// (leaves under it, its root), largest first; each a power of two.
    stack: Vec<(u64, Sha256)>,
}

impl Head {
    /// Adds the next leaf (already hashed with [`leaf_hash`]).
    pub fn push(&mut self, leaf: Sha256) {
        let mut top = (1u64, leaf);
        while let Some(&(n, left)) = self.stack.last() {
            if n != top.0 {
                break;
            }
            self.stack.pop();
            top = (2 * n, node_hash(left, top.1));
        }
        self.stack.push(top);
    }

    /// Leaves added.
    pub fn size(&self) -> u64 {
        self.stack.iter().map(|(n, _)| n).sum()
    }

    /// The tree head: the perfect subtrees joined from the right (RFC 9162 splits a tree at the
    /// largest power of two below its size, which is the leftmost subtree here).
    pub fn root(&self) -> Sha256 {
        let mut it = self.stack.iter().rev();
        let Some(&(_, mut r)) = it.next() else {
            return Sha256::of(b"");
        };
        for &(_, left) in it {
            r = node_hash(left, r);
        }
        r
    }
}

/// The audit path of leaf `index` (RFC 6962 §2.1.1 `PATH(m, D[n])`), nearest sibling first.
pub fn audit_path(entries: &[String], index: usize) -> Vec<Sha256> {
    let leaves: Vec<Sha256> = entries.iter().map(|e| leaf_hash(e)).collect();
    let mut path = Vec::new();
    path_of(&leaves, index, &mut path);
    path
}

fn path_of(leaves: &[Sha256], m: usize, path: &mut Vec<Sha256>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path_of(&leaves[..k], m, path);
        path.push(subtree(&leaves[k..]));
    } else {
        path_of(&leaves[k..], m - k, path);
        path.push(subtree(&leaves[..k]));
    }
}

/// The root that leaf `index` of a tree of `size` leaves, with this audit path, leads to
/// (RFC 9162 §2.1.3.2); `None` when the path does not fit the index and size.
pub fn root_from_path(leaf: Sha256, index: usize, size: usize, path: &[Sha256]) -> Option<Sha256> {
    if index >= size {
        return None;
    }
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = leaf;
    for p in path {
        if sn == 0 {
            return None;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(*p, r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(r, *p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    (sn == 0).then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{i:064x}  data/f{i:03}")).collect()
    }

    #[test]
    fn the_streamed_head_is_the_tree_head_at_every_size() {
        for n in 0..=70 {
            let leaves: Vec<Sha256> = entries(n).iter().map(|e| leaf_hash(e)).collect();
            let mut h = Head::default();
            for l in &leaves {
                h.push(*l);
            }
            assert_eq!(h.size(), n as u64);
            assert_eq!(h.root(), root_of_leaves(&leaves), "{n} leaves");
        }
    }

    #[test]
    fn every_leaf_of_every_size_proves_against_the_root_and_nothing_else_does() {
        for n in 1..=33 {
            let e = entries(n);
            let r = root(&e);
            for i in 0..n {
                let p = audit_path(&e, i);
                assert_eq!(
                    root_from_path(leaf_hash(&e[i]), i, n, &p),
                    Some(r),
                    "{n}/{i}"
                );
                // Another leaf, another index, a changed path: not the root. (The size alone is
                // not bound by the path; it is signed in bag-info beside the root.)
                let other = leaf_hash(&e[(i + 1) % n]);
                if n > 1 {
                    assert_ne!(root_from_path(other, i, n, &p), Some(r), "{n}/{i} other");
                    assert_ne!(
                        root_from_path(leaf_hash(&e[i]), (i + 1) % n, n, &p),
                        Some(r),
                        "{n}/{i} index"
                    );
                    let mut bad = p.clone();
                    bad[0] = Sha256::of(b"x");
                    assert_ne!(root_from_path(leaf_hash(&e[i]), i, n, &bad), Some(r));
                }
            }
        }
    }

    /// RFC 6962's hashing, by hand for three leaves: root = H(1 ‖ H(1 ‖ a ‖ b) ‖ c).
    #[test]
    fn the_hashing_is_rfc_6962s() {
        let e = entries(3);
        let (a, b, c) = (leaf_hash(&e[0]), leaf_hash(&e[1]), leaf_hash(&e[2]));
        let mut x = vec![0u8];
        x.extend_from_slice(e[0].as_bytes());
        assert_eq!(a, Sha256::of(&x));
        assert_eq!(root(&e), node_hash(node_hash(a, b), c));
        assert_eq!(root(&[]), Sha256::of(b""));
        assert_eq!(root(&e[..1]), a);
    }
}
