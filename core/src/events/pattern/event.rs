//! An event as the matcher sees it: the leaf values at the paths some pattern names (nothing
//! else is visited), each with the elements of arrays of objects it sits in. Arrays are looked
//! through; an element of an array of objects (or of arrays) is recorded so that one pattern
//! object's fields can be required to match within one element.

use std::collections::HashMap;

use serde_json::Value;

use super::Leaf;

/// The paths patterns name, as a tree of keys.
#[derive(Debug, Default, Clone)]
pub(crate) struct Paths {
    nodes: Vec<Node>,
    count: usize,
}

#[derive(Debug, Default, Clone)]
struct Node {
    children: HashMap<String, usize>,
    /// Set when a condition names this path.
    path: Option<usize>,
}

impl Paths {
    /// The id of `path` (keys from the root), added if new.
    pub(crate) fn id(&mut self, path: &[String]) -> usize {
        if self.nodes.is_empty() {
            self.nodes.push(Node::default());
        }
        let mut at = 0;
        for key in path {
            let next = self.nodes.len();
            let Some(node) = self.nodes.get_mut(at) else {
                return 0;
            };
            let child = *node.children.entry(key.clone()).or_insert(next);
            if child == next {
                self.nodes.push(Node::default());
            }
            at = child;
        }
        match self.nodes.get_mut(at).map(|n| &mut n.path) {
            Some(Some(id)) => *id,
            Some(slot) => {
                *slot = Some(self.count);
                self.count += 1;
                self.count - 1
            }
            None => 0,
        }
    }

    /// How many distinct paths there are (ids run from 0 to this, exclusive).
    pub(crate) fn len(&self) -> usize {
        self.count
    }
}

/// One leaf value found at a named path.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Found<'e> {
    pub path: usize,
    pub leaf: Leaf<'e>,
    /// Range in [`Flat::elements`] of the array elements the leaf sits in.
    pub within: (u32, u32),
}

/// An event flattened against [`Paths`].
#[derive(Debug, Default)]
pub(crate) struct Flat<'e> {
    pub found: Vec<Found<'e>>,
    /// `(array, element index)` pairs, referenced by [`Found::within`].
    pub elements: Vec<(u32, u32)>,
    arrays: u32,
    stack: Vec<(u32, u32)>,
}

impl<'e> Flat<'e> {
    pub(crate) fn clear(&mut self) {
        self.found.clear();
        self.elements.clear();
        self.arrays = 0;
        self.stack.clear();
    }

    /// Collects the leaves of `event` at the paths of `paths`.
    pub(crate) fn read(&mut self, paths: &Paths, event: &'e Value) {
        self.clear();
        if paths.nodes.is_empty() {
            return;
        }
        self.visit(paths, 0, event);
    }

    /// True when some leaf sits in an array of objects (so element consistency matters).
    pub(crate) fn has_elements(&self) -> bool {
        !self.elements.is_empty()
    }

    pub(crate) fn elements_of(&self, found: &Found<'_>) -> &[(u32, u32)] {
        let (start, len) = (found.within.0 as usize, found.within.1 as usize);
        self.elements.get(start..start + len).unwrap_or_default()
    }

    fn visit(&mut self, paths: &Paths, node: usize, value: &'e Value) {
        let Some(n) = paths.nodes.get(node) else {
            return;
        };
        let leaf = match value {
            Value::Object(map) => {
                if n.children.len() <= map.len() {
                    for (key, child) in &n.children {
                        if let Some(v) = map.get(key) {
                            self.visit(paths, *child, v);
                        }
                    }
                } else {
                    for (key, v) in map {
                        if let Some(child) = n.children.get(key) {
                            self.visit(paths, *child, v);
                        }
                    }
                }
                return;
            }
            Value::Array(items) => {
                let array = self.arrays;
                self.arrays += 1;
                for (i, item) in items.iter().enumerate() {
                    let container = item.is_object() || item.is_array();
                    if container {
                        self.stack
                            .push((array, u32::try_from(i).unwrap_or(u32::MAX)));
                    }
                    self.visit(paths, node, item);
                    if container {
                        self.stack.pop();
                    }
                }
                return;
            }
            Value::String(s) => Leaf::Str(s),
            Value::Number(num) => match num.as_f64() {
                Some(f) => Leaf::Num(f),
                None => return,
            },
            Value::Bool(b) => Leaf::Bool(*b),
            Value::Null => Leaf::Null,
        };
        if let Some(path) = n.path {
            let start = u32::try_from(self.elements.len()).unwrap_or(u32::MAX);
            self.elements.extend_from_slice(&self.stack);
            let len = u32::try_from(self.stack.len()).unwrap_or(u32::MAX);
            self.found.push(Found {
                path,
                leaf,
                within: (start, len),
            });
        }
    }
}

/// True when two leaves can belong to one match: every array both sit in, they sit in the
/// same element of.
pub(crate) fn consistent(a: &[(u32, u32)], b: &[(u32, u32)]) -> bool {
    a.iter()
        .all(|(array, i)| b.iter().all(|(other, j)| array != other || i == j))
}
