//! Copy-on-write B+tree.
//!
//! A [`Tree`] is a root pointer plus an arena of *dirty* (in-memory, not yet
//! written) nodes. A child is either `Clean` (a committed page, reached
//! through a pointer that names its commit sequence and checksum) or `Dirty`
//! (an arena index). Readers use a `Tree` with an empty arena; a write
//! transaction copies nodes into the arena as it modifies them (freeing the
//! page they came from) and serializes the arena bottom-up at commit.
//!
//! Keys are byte strings compared bytewise. Branch separators are the
//! shortest prefixes that separate two neighbours (suffix truncation);
//! `keys[i]` routes keys `>= keys[i]` to `children[i + 1]`.

use alloc::sync::Arc;
use core::cmp::Ordering;

use crate::error::{PageError, mismatch};
use crate::format::*;
use crate::io::File;
use crate::pager::{Bounds, Pager};
use crate::prelude::*;
use crate::space::Freed;

/// A key held in memory (always complete) plus the extent holding it when
/// it is too long to be stored inline (`None` until written at commit).
#[derive(Clone, Debug)]
pub(crate) struct StoredKey {
    pub bytes: Vec<u8>,
    pub ext: Option<ExtPtr>,
}

impl StoredKey {
    pub fn new(bytes: Vec<u8>) -> StoredKey {
        StoredKey { bytes, ext: None }
    }
}

/// A value as a leaf entry holds it: inline, or in an extent.
#[derive(Clone, Debug)]
pub(crate) enum StoredValue {
    Inline(Vec<u8>),
    Extent { len: u32, ext: ExtPtr },
}

impl From<ValRef<'_>> for StoredValue {
    fn from(v: ValRef<'_>) -> Self {
        match v {
            ValRef::Inline(b) => StoredValue::Inline(b.to_vec()),
            ValRef::Outline(len, ext) => StoredValue::Extent { len, ext },
        }
    }
}

impl StoredValue {
    pub fn len(&self) -> u64 {
        match self {
            StoredValue::Inline(v) => v.len() as u64,
            StoredValue::Extent { len, .. } => u64::from(*len),
        }
    }
}

/// A leaf entry held in memory.
#[derive(Clone, Debug)]
pub(crate) struct StoredEntry {
    pub key: StoredKey,
    pub val: StoredValue,
    pub version: u64,
    /// When it expires (wall-clock ms), if it does.
    pub expires: Option<u64>,
}

#[derive(Clone, Copy, Debug)]
pub(crate) enum Child {
    Clean(PagePtr),
    Dirty(usize),
}

pub(crate) enum Body {
    Leaf(Vec<StoredEntry>),
    Branch {
        keys: Vec<StoredKey>,
        children: Vec<Child>,
    },
}

/// State of a node after a delete below it.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shape {
    Ok,
    Underflow,
    Empty,
}

pub(crate) struct DirtyNode {
    pub level: u16,
    pub body: Body,
    /// Encoded size in bytes (must stay <= page size after each operation).
    pub size: usize,
}

/// A key/value item produced by reads.
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub key: Vec<u8>,
    pub val: Option<StoredValue>,
    pub version: u64,
    pub expires: Option<u64>,
}

/// A leaf entry's value, version and expiry.
pub(crate) type Stored = (StoredValue, u64, Option<u64>);

/// Scan start.
#[derive(Clone, Copy)]
pub(crate) enum Bound<'k> {
    Start,
    Excl(&'k [u8]),
    Incl(&'k [u8]),
}

/// Scan callback: receives each item; returns false to stop.
pub(crate) type Visitor<'v, F> = dyn FnMut(&mut Walk<F>, Item) -> Result<bool, PageError> + 'v;

pub(crate) struct Walk<'p, F> {
    pub pager: &'p mut Pager<F>,
    pub bounds: Bounds,
    /// Node visits left for this operation. A valid tree never needs more
    /// than a few per item returned; a damaged file with shared subtrees
    /// (a DAG) could otherwise make a traversal exponentially long.
    pub budget: u64,
}

/// Node visits allowed per operation (far above any legitimate need).
pub(crate) const VISIT_BUDGET: u64 = 1 << 22;

impl<'p, F> Walk<'p, F> {
    pub fn new(pager: &'p mut Pager<F>, bounds: Bounds) -> Self {
        Walk {
            pager,
            bounds,
            budget: VISIT_BUDGET,
        }
    }
}

enum NodeRef<'t> {
    Mem(&'t DirtyNode),
    Page(Arc<[u8]>),
}

fn internal(what: &str) -> PageError {
    mismatch(0, format!("internal invariant violated: {what}"))
}

pub(crate) fn shortest_sep(a: &[u8], b: &[u8]) -> Vec<u8> {
    let lcp = a.iter().zip(b.iter()).take_while(|(x, y)| x == y).count();
    b[..(lcp + 1).min(b.len())].to_vec()
}

pub(crate) struct Tree {
    pub tree_id: u8,
    pub root: Option<Child>,
    /// Number of levels (0 = empty tree, 1 = root is a leaf).
    pub depth: u16,
    pub nodes: Vec<DirtyNode>,
    pub geo: Geo,
}

impl Tree {
    pub fn new(tree_id: u8, root: PagePtr, depth: u16, geo: Geo) -> Tree {
        Tree {
            tree_id,
            root: (depth > 0).then_some(Child::Clean(root)),
            depth,
            nodes: Vec::new(),
            geo,
        }
    }

    // ------------------------------------------------------------ reading

    fn load<F: File>(&self, walk: &mut Walk<F>, child: Child, level: u16) -> Result<NodeRef<'_>, PageError> {
        walk.budget = walk.budget.checked_sub(1).ok_or_else(|| {
            mismatch(
                0,
                "tree traversal exceeded its page-visit budget (shared subtrees or a cycle?)",
            )
        })?;
        match child {
            Child::Dirty(id) => self
                .nodes
                .get(id)
                .map(NodeRef::Mem)
                .ok_or_else(|| internal("dangling node")),
            Child::Clean(ptr) => Ok(NodeRef::Page(walk.pager.node(
                ptr,
                self.tree_id,
                level,
                &walk.bounds,
            )?)),
        }
    }

    fn view<'d>(&self, d: &'d [u8]) -> Result<NodeView<'d>, PageError> {
        NodeView::new(d, self.geo).map_err(|b| mismatch(0, b))
    }

    fn count(&self, n: &NodeRef<'_>) -> Result<usize, PageError> {
        Ok(match n {
            NodeRef::Mem(m) => match &m.body {
                Body::Leaf(e) => e.len(),
                Body::Branch { keys, .. } => keys.len(),
            },
            NodeRef::Page(d) => self.view(d)?.hdr.count,
        })
    }

    fn child_at(&self, n: &NodeRef<'_>, i: usize) -> Result<Child, PageError> {
        match n {
            NodeRef::Mem(m) => match &m.body {
                Body::Branch { children, .. } => {
                    children.get(i).copied().ok_or_else(|| internal("child index"))
                }
                Body::Leaf(_) => Err(internal("child of leaf")),
            },
            NodeRef::Page(d) => Ok(Child::Clean(self.view(d)?.child(i).map_err(|b| mismatch(0, b))?)),
        }
    }

    /// `key(i).cmp(key)` in an in-memory node.
    fn cmp_mem(m: &DirtyNode, i: usize, key: &[u8]) -> Result<Ordering, PageError> {
        let stored = match &m.body {
            Body::Leaf(e) => &e.get(i).ok_or_else(|| internal("entry index"))?.key,
            Body::Branch { keys, .. } => keys.get(i).ok_or_else(|| internal("key index"))?,
        };
        Ok(stored.bytes.as_slice().cmp(key))
    }

    /// Leaf: first index whose key is `>= key` (`upper == false`) or
    /// `> key` (`upper == true`), and whether an equal key was seen.
    /// Branch (always `upper`): index of the child that may hold `key`.
    fn search<F: File>(
        &self,
        walk: &mut Walk<F>,
        n: &NodeRef<'_>,
        key: &[u8],
        upper: bool,
    ) -> Result<(usize, bool), PageError> {
        match n {
            NodeRef::Mem(m) => bsearch(self.count(n)?, upper, |i| Self::cmp_mem(m, i, key)),
            NodeRef::Page(d) => {
                // The view is made once per node, not per comparison.
                let v = self.view(d)?;
                bsearch(v.hdr.count, upper, |i| match v.inline_key(i) {
                    Some(stored) => Ok(stored.cmp(key)),
                    None => cmp_stored(walk, v.key(i).map_err(|b| mismatch(0, b))?, key),
                })
            }
        }
    }

    fn leaf_item<F: File>(
        &self,
        walk: &mut Walk<F>,
        n: &NodeRef<'_>,
        i: usize,
        want_val: bool,
    ) -> Result<Item, PageError> {
        match n {
            NodeRef::Mem(m) => match &m.body {
                Body::Leaf(e) => {
                    let e = e.get(i).ok_or_else(|| internal("entry index"))?;
                    Ok(Item {
                        key: e.key.bytes.clone(),
                        val: want_val.then(|| e.val.clone()),
                        version: e.version,
                        expires: e.expires,
                    })
                }
                Body::Branch { .. } => Err(internal("item of branch")),
            },
            NodeRef::Page(d) => {
                let v = self.view(d)?;
                let e = v.leaf_entry(i).map_err(|b| mismatch(0, b))?;
                let key = full_key(walk, e.key)?;
                Ok(Item {
                    key,
                    val: want_val.then(|| StoredValue::from(e.val)),
                    version: e.version,
                    expires: e.expires,
                })
            }
        }
    }

    /// The value, version and expiry of leaf entry `i` (a lookup needs no key).
    fn leaf_value(&self, n: &NodeRef<'_>, i: usize) -> Result<Stored, PageError> {
        match n {
            NodeRef::Mem(m) => match &m.body {
                Body::Leaf(e) => {
                    let e = e.get(i).ok_or_else(|| internal("entry index"))?;
                    Ok((e.val.clone(), e.version, e.expires))
                }
                Body::Branch { .. } => Err(internal("value of branch")),
            },
            NodeRef::Page(d) => {
                let e = self.view(d)?.leaf_entry(i).map_err(|b| mismatch(0, b))?;
                Ok((StoredValue::from(e.val), e.version, e.expires))
            }
        }
    }

    fn check_depth(&self) -> Result<(), PageError> {
        if self.depth > MAX_DEPTH {
            return Err(mismatch(
                0,
                format!("tree depth {} exceeds the limit", self.depth),
            ));
        }
        Ok(())
    }

    /// Exact lookup: the value, version and expiry stored for `key`.
    pub fn get<F: File>(&self, walk: &mut Walk<F>, key: &[u8]) -> Result<Option<Stored>, PageError> {
        self.check_depth()?;
        let Some(mut child) = self.root else {
            return Ok(None);
        };
        let mut level = self.depth.checked_sub(1).ok_or_else(|| internal("depth"))?;
        loop {
            let n = self.load(walk, child, level)?;
            if level == 0 {
                let (i, found) = self.search(walk, &n, key, false)?;
                return if found {
                    Ok(Some(self.leaf_value(&n, i)?))
                } else {
                    Ok(None)
                };
            }
            let (i, _) = self.search(walk, &n, key, true)?;
            child = self.child_at(&n, i)?;
            level -= 1;
        }
    }

    /// In-order scan from `from`; `visit` returns false to stop.
    pub fn scan<F: File>(
        &self,
        walk: &mut Walk<F>,
        from: Bound<'_>,
        want_val: bool,
        visit: &mut Visitor<'_, F>,
    ) -> Result<(), PageError> {
        self.check_depth()?;
        let Some(root) = self.root else { return Ok(()) };
        let level = self.depth.checked_sub(1).ok_or_else(|| internal("depth"))?;
        self.scan_rec(walk, root, level, from, want_val, visit)
            .map(|_| ())
    }

    fn scan_rec<F: File>(
        &self,
        walk: &mut Walk<F>,
        child: Child,
        level: u16,
        from: Bound<'_>,
        want_val: bool,
        visit: &mut Visitor<'_, F>,
    ) -> Result<bool, PageError> {
        let n = self.load(walk, child, level)?;
        let count = self.count(&n)?;
        if level == 0 {
            let start = match from {
                Bound::Start => 0,
                Bound::Excl(k) => self.search(walk, &n, k, true)?.0,
                Bound::Incl(k) => self.search(walk, &n, k, false)?.0,
            };
            for i in start..count {
                let item = self.leaf_item(walk, &n, i, want_val)?;
                if !visit(walk, item)? {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        let start = match from {
            Bound::Start => 0,
            Bound::Excl(k) | Bound::Incl(k) => self.search(walk, &n, k, true)?.0,
        };
        for i in start..=count {
            let c = self.child_at(&n, i)?;
            let f = if i == start { from } else { Bound::Start };
            if !self.scan_rec(walk, c, level - 1, f, want_val, visit)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// The largest item whose key is `< key`.
    pub fn last_lt<F: File>(&self, walk: &mut Walk<F>, key: &[u8]) -> Result<Option<Item>, PageError> {
        self.check_depth()?;
        let Some(root) = self.root else { return Ok(None) };
        let level = self.depth.checked_sub(1).ok_or_else(|| internal("depth"))?;
        self.last_rec(walk, root, level, Some(key))
    }

    fn last_rec<F: File>(
        &self,
        walk: &mut Walk<F>,
        child: Child,
        level: u16,
        key: Option<&[u8]>,
    ) -> Result<Option<Item>, PageError> {
        let n = self.load(walk, child, level)?;
        let count = self.count(&n)?;
        if level == 0 {
            let end = match key {
                Some(k) => self.search(walk, &n, k, false)?.0,
                None => count,
            };
            return if end == 0 {
                Ok(None)
            } else {
                Ok(Some(self.leaf_item(walk, &n, end - 1, true)?))
            };
        }
        let ci = match key {
            Some(k) => self.search(walk, &n, k, true)?.0,
            None => count,
        };
        for c in (0..=ci).rev() {
            let ch = self.child_at(&n, c)?;
            let r = self.last_rec(walk, ch, level - 1, if c == ci { key } else { None })?;
            if r.is_some() {
                return Ok(r);
            }
        }
        Ok(None)
    }

    // ------------------------------------------------------------ sizes

    fn entry_size(&self, e: &StoredEntry) -> usize {
        let v = match &e.val {
            StoredValue::Inline(b) => ValSize::Inline(b.len()),
            StoredValue::Extent { .. } => ValSize::Outline,
        };
        2 + self
            .geo
            .leaf_entry_size(e.key.bytes.len(), v, e.expires.is_some())
    }

    fn sep_size(&self, k: &StoredKey) -> usize {
        2 + self.geo.branch_entry_size(k.bytes.len())
    }

    fn leaf_size(&self, es: &[StoredEntry]) -> usize {
        PAGE_HDR + es.iter().map(|e| self.entry_size(e)).sum::<usize>()
    }

    fn branch_size(&self, keys: &[StoredKey]) -> usize {
        PAGE_HDR + PTR_LEN + keys.iter().map(|k| self.sep_size(k)).sum::<usize>()
    }

    fn push(&mut self, level: u16, body: Body) -> usize {
        let size = match &body {
            Body::Leaf(e) => self.leaf_size(e),
            Body::Branch { keys, .. } => self.branch_size(keys),
        };
        self.nodes.push(DirtyNode { level, body, size });
        self.nodes.len() - 1
    }

    fn resize(&mut self, id: usize) {
        let size = match &self.nodes[id].body {
            Body::Leaf(e) => self.leaf_size(e),
            Body::Branch { keys, .. } => self.branch_size(keys),
        };
        self.nodes[id].size = size;
    }

    // ------------------------------------------------------------ copy-on-write

    /// Decodes a committed page into an arena node and frees the page.
    fn make_dirty<F: File>(
        &mut self,
        walk: &mut Walk<F>,
        freed: &mut Freed,
        child: Child,
        level: u16,
    ) -> Result<usize, PageError> {
        let ptr = match child {
            Child::Dirty(id) => return Ok(id),
            Child::Clean(p) => p,
        };
        let data = walk.pager.node(ptr, self.tree_id, level, &walk.bounds)?;
        let v = self.view(&data)?;
        let body = if v.is_leaf() {
            let mut es = Vec::with_capacity(v.hdr.count);
            for i in 0..v.hdr.count {
                let e = v.leaf_entry(i).map_err(|b| mismatch(u64::from(ptr.page), b))?;
                let key = mkey(walk, e.key)?;
                let val = match e.val {
                    ValRef::Inline(b) => StoredValue::Inline(b.to_vec()),
                    ValRef::Outline(len, ext) => StoredValue::Extent { len, ext },
                };
                es.push(StoredEntry {
                    key,
                    val,
                    version: e.version,
                    expires: e.expires,
                });
            }
            Body::Leaf(es)
        } else {
            let mut keys = Vec::with_capacity(v.hdr.count);
            let mut children = Vec::with_capacity(v.hdr.count + 1);
            for i in 0..v.hdr.count {
                keys.push(mkey(
                    walk,
                    v.branch_key(i).map_err(|b| mismatch(u64::from(ptr.page), b))?,
                )?);
            }
            for i in 0..=v.hdr.count {
                children.push(Child::Clean(
                    v.child(i).map_err(|b| mismatch(u64::from(ptr.page), b))?,
                ));
            }
            Body::Branch { keys, children }
        };
        freed.free_page(ptr.page)?;
        Ok(self.push(level, body))
    }

    fn dirty_root<F: File>(&mut self, walk: &mut Walk<F>, freed: &mut Freed) -> Result<usize, PageError> {
        let root = self.root.ok_or_else(|| internal("no root"))?;
        let level = self.depth.checked_sub(1).ok_or_else(|| internal("depth"))?;
        let id = self.make_dirty(walk, freed, root, level)?;
        self.root = Some(Child::Dirty(id));
        Ok(id)
    }

    // ------------------------------------------------------------ insert

    /// Inserts or replaces; returns the previous entry (whose key `ext` is
    /// `None`: an existing key keeps its extent in the tree).
    pub fn insert<F: File>(
        &mut self,
        walk: &mut Walk<F>,
        freed: &mut Freed,
        entry: StoredEntry,
    ) -> Result<Option<StoredEntry>, PageError> {
        self.check_depth()?;
        if self.root.is_none() {
            let id = self.push(0, Body::Leaf(vec![entry]));
            self.root = Some(Child::Dirty(id));
            self.depth = 1;
            return Ok(None);
        }
        let rid = self.dirty_root(walk, freed)?;
        let (old, split) = self.insert_rec(walk, freed, rid, entry, true, true)?;
        if let Some((sep, right)) = split {
            if self.depth >= MAX_DEPTH {
                return Err(internal("tree too deep"));
            }
            let id = self.push(
                self.depth,
                Body::Branch {
                    keys: vec![sep],
                    children: vec![Child::Dirty(rid), Child::Dirty(right)],
                },
            );
            self.root = Some(Child::Dirty(id));
            self.depth += 1;
        }
        Ok(old)
    }

    #[allow(clippy::type_complexity)]
    fn insert_rec<F: File>(
        &mut self,
        walk: &mut Walk<F>,
        freed: &mut Freed,
        id: usize,
        entry: StoredEntry,
        leftmost: bool,
        rightmost: bool,
    ) -> Result<(Option<StoredEntry>, Option<(StoredKey, usize)>), PageError> {
        let level = self.nodes[id].level;
        let page = self.geo.page;
        if level == 0 {
            let new_size = self.entry_size(&entry);
            let (old, ins_at) = {
                let node = &mut self.nodes[id];
                let Body::Leaf(es) = &mut node.body else {
                    return Err(internal("leaf expected"));
                };
                match es.binary_search_by(|e| e.key.bytes.as_slice().cmp(&entry.key.bytes)) {
                    Ok(i) => {
                        let mut old = core::mem::replace(&mut es[i], entry);
                        core::mem::swap(&mut es[i].key, &mut old.key);
                        (Some(old), None)
                    }
                    Err(i) => {
                        es.insert(i, entry);
                        node.size += new_size;
                        (None, Some(i))
                    }
                }
            };
            if let Some(o) = &old {
                let os = self.entry_size(o);
                self.nodes[id].size = self.nodes[id].size + new_size - os;
            }
            if self.nodes[id].size <= page {
                return Ok((old, None));
            }
            // Split.
            let mut es = match core::mem::replace(&mut self.nodes[id].body, Body::Leaf(Vec::new())) {
                Body::Leaf(es) => es,
                Body::Branch { .. } => return Err(internal("leaf expected")),
            };
            let n = es.len();
            let at = match ins_at {
                Some(i) if rightmost && n >= 2 && i == n - 1 => n - 1,
                Some(0) if leftmost && n >= 2 => 1,
                _ => self.leaf_split_point(&es),
            };
            let right = es.split_off(at);
            let (Some(l), Some(r)) = (es.last(), right.first()) else {
                return Err(internal("empty split half"));
            };
            let sep = StoredKey::new(shortest_sep(&l.key.bytes, &r.key.bytes));
            self.nodes[id].body = Body::Leaf(es);
            self.resize(id);
            let rid = self.push(0, Body::Leaf(right));
            if self.nodes[id].size > page || self.nodes[rid].size > page {
                return Err(internal("leaf split does not fit"));
            }
            return Ok((old, Some((sep, rid))));
        }
        // Branch.
        let (ci, child, nkeys) = {
            let Body::Branch { keys, children } = &self.nodes[id].body else {
                return Err(internal("branch expected"));
            };
            let ci = keys.partition_point(|k| k.bytes.as_slice() <= entry.key.bytes.as_slice());
            (
                ci,
                *children.get(ci).ok_or_else(|| internal("child index"))?,
                keys.len(),
            )
        };
        let cid = self.make_dirty(walk, freed, child, level - 1)?;
        if let Body::Branch { children, .. } = &mut self.nodes[id].body {
            children[ci] = Child::Dirty(cid);
        }
        let (old, split) = self.insert_rec(
            walk,
            freed,
            cid,
            entry,
            leftmost && ci == 0,
            rightmost && ci == nkeys,
        )?;
        let Some((sep, rid)) = split else {
            return Ok((old, None));
        };
        let add = self.sep_size(&sep);
        {
            let node = &mut self.nodes[id];
            let Body::Branch { keys, children } = &mut node.body else {
                return Err(internal("branch expected"));
            };
            keys.insert(ci, sep);
            children.insert(ci + 1, Child::Dirty(rid));
            node.size += add;
        }
        if self.nodes[id].size <= page {
            return Ok((old, None));
        }
        let (mut keys, mut children) =
            match core::mem::replace(&mut self.nodes[id].body, Body::Leaf(Vec::new())) {
                Body::Branch { keys, children } => (keys, children),
                Body::Leaf(_) => return Err(internal("branch expected")),
            };
        let at = if rightmost && ci == nkeys {
            keys.len() - 1
        } else if leftmost && ci == 0 {
            0
        } else {
            self.branch_split_point(&keys)
        };
        let rkeys = keys.split_off(at + 1);
        let up = keys.pop().ok_or_else(|| internal("branch split"))?;
        let rchildren = children.split_off(at + 1);
        self.nodes[id].body = Body::Branch { keys, children };
        self.resize(id);
        let rid2 = self.push(
            level,
            Body::Branch {
                keys: rkeys,
                children: rchildren,
            },
        );
        if self.nodes[id].size > page || self.nodes[rid2].size > page {
            return Err(internal("branch split does not fit"));
        }
        Ok((old, Some((up, rid2))))
    }

    fn leaf_split_point(&self, es: &[StoredEntry]) -> usize {
        let total: usize = es.iter().map(|e| self.entry_size(e)).sum();
        let mut acc = 0;
        for (i, e) in es.iter().enumerate() {
            acc += self.entry_size(e);
            if acc * 2 >= total {
                return (i + 1).clamp(1, es.len() - 1);
            }
        }
        es.len() / 2
    }

    /// Index of the separator that moves up.
    fn branch_split_point(&self, keys: &[StoredKey]) -> usize {
        let total: usize = keys.iter().map(|k| self.sep_size(k)).sum();
        let mut acc = 0;
        for (i, k) in keys.iter().enumerate() {
            let s = self.sep_size(k);
            if (acc + s) * 2 > total {
                return i.min(keys.len() - 1);
            }
            acc += s;
        }
        keys.len() / 2
    }

    // ------------------------------------------------------------ delete

    /// Deletes `key`; returns the removed entry (with its key extent).
    pub fn delete<F: File>(
        &mut self,
        walk: &mut Walk<F>,
        freed: &mut Freed,
        key: &[u8],
    ) -> Result<Option<StoredEntry>, PageError> {
        if self.get(walk, key)?.is_none() {
            return Ok(None);
        }
        let rid = self.dirty_root(walk, freed)?;
        let (old, _) = self.delete_rec(walk, freed, rid, key)?;
        // Collapse the root.
        while let Some(Child::Dirty(id)) = self.root {
            match &self.nodes[id].body {
                Body::Branch { keys, children } if keys.is_empty() => {
                    self.root = children.first().copied();
                    self.depth = if self.root.is_some() { self.depth - 1 } else { 0 };
                }
                Body::Leaf(es) if es.is_empty() => {
                    self.root = None;
                    self.depth = 0;
                }
                _ => break,
            }
        }
        Ok(old)
    }

    fn delete_rec<F: File>(
        &mut self,
        walk: &mut Walk<F>,
        freed: &mut Freed,
        id: usize,
        key: &[u8],
    ) -> Result<(Option<StoredEntry>, Shape), PageError> {
        let level = self.nodes[id].level;
        if level == 0 {
            let old = {
                let Body::Leaf(es) = &mut self.nodes[id].body else {
                    return Err(internal("leaf expected"));
                };
                match es.binary_search_by(|e| e.key.bytes.as_slice().cmp(key)) {
                    Ok(i) => Some(es.remove(i)),
                    Err(_) => None,
                }
            };
            if let Some(o) = &old {
                let s = self.entry_size(o);
                self.nodes[id].size -= s;
            }
            return Ok((old, self.shape(id)));
        }
        let (ci, child) = {
            let Body::Branch { keys, children } = &self.nodes[id].body else {
                return Err(internal("branch expected"));
            };
            let ci = keys.partition_point(|k| k.bytes.as_slice() <= key);
            (ci, *children.get(ci).ok_or_else(|| internal("child index"))?)
        };
        let cid = self.make_dirty(walk, freed, child, level - 1)?;
        if let Body::Branch { children, .. } = &mut self.nodes[id].body {
            children[ci] = Child::Dirty(cid);
        }
        let (old, shape) = self.delete_rec(walk, freed, cid, key)?;
        match shape {
            Shape::Empty => {
                // Drop the empty child together with one adjacent separator.
                let sep = {
                    let Body::Branch { keys, children } = &mut self.nodes[id].body else {
                        return Err(internal("branch expected"));
                    };
                    children.remove(ci);
                    if keys.is_empty() {
                        None
                    } else {
                        Some(keys.remove(ci.saturating_sub(1)))
                    }
                };
                if let Some(ext) = sep.and_then(|k| k.ext) {
                    freed.free_extent(ext)?;
                }
                self.resize(id);
            }
            Shape::Underflow => self.rebalance(walk, freed, id, ci)?,
            Shape::Ok => {}
        }
        Ok((old, self.shape(id)))
    }

    fn shape(&self, id: usize) -> Shape {
        let empty = match &self.nodes[id].body {
            Body::Leaf(es) => es.is_empty(),
            Body::Branch { children, .. } => children.is_empty(),
        };
        if empty {
            Shape::Empty
        } else if self.nodes[id].size < self.geo.underflow() {
            Shape::Underflow
        } else {
            Shape::Ok
        }
    }

    /// Merges child `ci` of `pid` with a sibling, or redistributes.
    fn rebalance<F: File>(
        &mut self,
        walk: &mut Walk<F>,
        freed: &mut Freed,
        pid: usize,
        ci: usize,
    ) -> Result<(), PageError> {
        let level = self.nodes[pid].level;
        let (li, lchild, rchild) = {
            let Body::Branch { keys, children } = &self.nodes[pid].body else {
                return Err(internal("branch expected"));
            };
            if keys.is_empty() {
                return Ok(());
            }
            let li = if ci < keys.len() { ci } else { ci - 1 };
            (li, children[li], children[li + 1])
        };
        let lid = self.make_dirty(walk, freed, lchild, level - 1)?;
        let rid = self.make_dirty(walk, freed, rchild, level - 1)?;
        let page = self.geo.page;
        let lbody = core::mem::replace(&mut self.nodes[lid].body, Body::Leaf(Vec::new()));
        let rbody = core::mem::replace(&mut self.nodes[rid].body, Body::Leaf(Vec::new()));
        let (mut pkeys, mut pchildren) =
            match core::mem::replace(&mut self.nodes[pid].body, Body::Leaf(Vec::new())) {
                Body::Branch { keys, children } => (keys, children),
                Body::Leaf(_) => return Err(internal("branch expected")),
            };
        pchildren[li] = Child::Dirty(lid);
        pchildren[li + 1] = Child::Dirty(rid);
        match (lbody, rbody) {
            (Body::Leaf(mut l), Body::Leaf(r)) => {
                l.extend(r);
                if self.leaf_size(&l) <= page {
                    self.nodes[lid].body = Body::Leaf(l);
                    let sep = pkeys.remove(li);
                    if let Some(ext) = sep.ext {
                        freed.free_extent(ext)?;
                    }
                    pchildren.remove(li + 1);
                } else {
                    let at = self.leaf_split_point(&l);
                    let r = l.split_off(at);
                    let (Some(a), Some(b)) = (l.last(), r.first()) else {
                        return Err(internal("empty half"));
                    };
                    let sep = StoredKey::new(shortest_sep(&a.key.bytes, &b.key.bytes));
                    let old = core::mem::replace(&mut pkeys[li], sep);
                    if let Some(ext) = old.ext {
                        freed.free_extent(ext)?;
                    }
                    self.nodes[lid].body = Body::Leaf(l);
                    self.nodes[rid].body = Body::Leaf(r);
                }
            }
            (
                Body::Branch {
                    keys: mut lk,
                    children: mut lc,
                },
                Body::Branch {
                    keys: rk,
                    children: rc,
                },
            ) => {
                let sep = pkeys.remove(li);
                lk.push(sep);
                lk.extend(rk);
                lc.extend(rc);
                if self.branch_size(&lk) <= page {
                    self.nodes[lid].body = Body::Branch {
                        keys: lk,
                        children: lc,
                    };
                    pchildren.remove(li + 1);
                } else {
                    let at = self.branch_split_point(&lk);
                    let rk = lk.split_off(at + 1);
                    let up = lk.pop().ok_or_else(|| internal("split"))?;
                    let rc = lc.split_off(at + 1);
                    pkeys.insert(li, up);
                    self.nodes[lid].body = Body::Branch {
                        keys: lk,
                        children: lc,
                    };
                    self.nodes[rid].body = Body::Branch {
                        keys: rk,
                        children: rc,
                    };
                }
            }
            _ => {
                return Err(mismatch(
                    0,
                    "siblings at the same level have different node types",
                ));
            }
        }
        self.resize(lid);
        self.resize(rid);
        self.nodes[pid].body = Body::Branch {
            keys: pkeys,
            children: pchildren,
        };
        self.resize(pid);
        if self.nodes[lid].size > page || self.nodes[rid].size > page {
            return Err(internal("rebalance does not fit"));
        }
        Ok(())
    }

    // ------------------------------------------------------------ commit

    /// Reachable dirty nodes, children before parents.
    pub fn dirty_postorder(&self) -> Vec<usize> {
        let mut out = Vec::new();
        if let Some(Child::Dirty(id)) = self.root {
            self.post(id, &mut out);
        }
        out
    }

    fn post(&self, id: usize, out: &mut Vec<usize>) {
        if let Body::Branch { children, .. } = &self.nodes[id].body {
            for c in children {
                if let Child::Dirty(cid) = c {
                    self.post(*cid, out);
                }
            }
        }
        out.push(id);
    }

    /// Long keys in dirty nodes that have no extent yet: (node, index, bytes).
    pub fn unwritten_long_keys(&self, order: &[usize]) -> Vec<(usize, usize, Vec<u8>)> {
        let mut v = Vec::new();
        for &id in order {
            let keys: Box<dyn Iterator<Item = &StoredKey>> = match &self.nodes[id].body {
                Body::Leaf(es) => Box::new(es.iter().map(|e| &e.key)),
                Body::Branch { keys, .. } => Box::new(keys.iter()),
            };
            for (i, k) in keys.enumerate() {
                if k.bytes.len() > self.geo.kmax && k.ext.is_none() {
                    v.push((id, i, k.bytes.clone()));
                }
            }
        }
        v
    }

    pub fn set_key_ext(&mut self, id: usize, i: usize, ext: ExtPtr) {
        match &mut self.nodes[id].body {
            Body::Leaf(es) => es[i].key.ext = Some(ext),
            Body::Branch { keys, .. } => keys[i].ext = Some(ext),
        }
    }

    /// Encodes the dirty nodes in `order` into `pages`; returns the new root.
    pub fn serialize(
        &self,
        order: &[usize],
        pages: &[u32],
        seq: u64,
        out: &mut Vec<(u32, Vec<u8>, u32)>,
    ) -> Result<Option<PagePtr>, PageError> {
        // Node id → the page it was written to (ids index `self.nodes`).
        let mut done: Vec<Option<PagePtr>> = vec![None; self.nodes.len()];
        for (&id, &page_no) in order.iter().zip(pages) {
            let node = &self.nodes[id];
            let mut b = vec![0u8; self.geo.page];
            match &node.body {
                Body::Leaf(es) => {
                    write_page_hdr(
                        &mut b,
                        &PageHdr {
                            ptype: T_LEAF,
                            tree: self.tree_id,
                            level: 0,
                            seq,
                            count: es.len(),
                        },
                    );
                    let mut off = PAGE_HDR + 2 * es.len();
                    for (i, e) in es.iter().enumerate() {
                        wr_u16(&mut b, PAGE_HDR + 2 * i, off as u16);
                        off = self.put_leaf_entry(&mut b, off, e)?;
                    }
                }
                Body::Branch { keys, children } => {
                    write_page_hdr(
                        &mut b,
                        &PageHdr {
                            ptype: T_BRANCH,
                            tree: self.tree_id,
                            level: node.level,
                            seq,
                            count: keys.len(),
                        },
                    );
                    let resolve = |c: &Child| -> Result<PagePtr, PageError> {
                        match c {
                            Child::Clean(p) => Ok(*p),
                            Child::Dirty(cid) => done
                                .get(*cid)
                                .copied()
                                .flatten()
                                .ok_or_else(|| internal("child serialized after parent")),
                        }
                    };
                    resolve(children.first().ok_or_else(|| internal("branch without child"))?)?
                        .write(&mut b, PAGE_HDR);
                    let base = PAGE_HDR + PTR_LEN;
                    let mut off = base + 2 * keys.len();
                    for (i, k) in keys.iter().enumerate() {
                        wr_u16(&mut b, base + 2 * i, off as u16);
                        b[off] = if k.bytes.len() > self.geo.kmax {
                            F_KEY_OUT
                        } else {
                            0
                        };
                        off = self.put_key(&mut b, off + 1, k)?;
                        resolve(children.get(i + 1).ok_or_else(|| internal("child count"))?)?
                            .write(&mut b, off);
                        off += PTR_LEN;
                    }
                }
            }
            let crc = seal_page(page_no, &mut b);
            *done.get_mut(id).ok_or_else(|| internal("node id out of range"))? = Some(PagePtr {
                page: page_no,
                seq,
                crc,
            });
            out.push((page_no, b, crc));
        }
        Ok(match self.root {
            None => None,
            Some(Child::Clean(p)) => Some(p),
            Some(Child::Dirty(id)) => Some(
                done.get(id)
                    .copied()
                    .flatten()
                    .ok_or_else(|| internal("root not serialized"))?,
            ),
        })
    }

    fn put_key(&self, b: &mut [u8], mut off: usize, k: &StoredKey) -> Result<usize, PageError> {
        if k.bytes.len() > self.geo.kmax {
            let ext = k.ext.ok_or_else(|| internal("long key without extent"))?;
            wr_u16(b, off, self.geo.kprefix as u16);
            wr_u32(b, off + 2, k.bytes.len() as u32);
            ext.write(b, off + 6);
            off += 6 + EXT_PTR_LEN;
            b[off..off + self.geo.kprefix].copy_from_slice(&k.bytes[..self.geo.kprefix]);
            Ok(off + self.geo.kprefix)
        } else {
            wr_u16(b, off, k.bytes.len() as u16);
            b[off + 2..off + 2 + k.bytes.len()].copy_from_slice(&k.bytes);
            Ok(off + 2 + k.bytes.len())
        }
    }

    fn put_leaf_entry(&self, b: &mut [u8], off: usize, e: &StoredEntry) -> Result<usize, PageError> {
        let mut flags = 0;
        if e.key.bytes.len() > self.geo.kmax {
            flags |= F_KEY_OUT;
        }
        if matches!(e.val, StoredValue::Extent { .. }) {
            flags |= F_VAL_OUT;
        }
        if e.expires.is_some() {
            flags |= F_EXPIRES;
        }
        b[off] = flags;
        wr_u64(b, off + 1, e.version);
        let mut off = self.put_key(b, off + 9, &e.key)?;
        match &e.val {
            StoredValue::Inline(v) => {
                wr_u16(b, off, v.len() as u16);
                b[off + 2..off + 2 + v.len()].copy_from_slice(v);
                off += 2 + v.len();
            }
            StoredValue::Extent { len, ext } => {
                wr_u32(b, off, *len);
                ext.write(b, off + 4);
                off += 4 + EXT_PTR_LEN;
            }
        }
        if let Some(at) = e.expires {
            wr_u64(b, off, at);
            off += 8;
        }
        Ok(off)
    }
}

/// Binary search over `count` sorted keys, `cmp(i)` being `key(i).cmp(key)`:
/// the first index whose key is `>= key` (`> key` if `upper`), and whether
/// an equal key was seen.
fn bsearch(
    count: usize,
    upper: bool,
    mut cmp: impl FnMut(usize) -> Result<Ordering, PageError>,
) -> Result<(usize, bool), PageError> {
    let (mut lo, mut hi) = (0usize, count);
    let mut found = false;
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match cmp(mid)? {
            Ordering::Less => lo = mid + 1,
            Ordering::Equal => {
                found = true;
                if upper {
                    lo = mid + 1;
                } else {
                    hi = mid;
                }
            }
            Ordering::Greater => hi = mid,
        }
    }
    Ok((lo, found))
}

/// Compares a stored key with `key`: `stored.cmp(key)`.
pub(crate) fn cmp_stored<F: File>(
    walk: &mut Walk<F>,
    kr: KeyRef<'_>,
    key: &[u8],
) -> Result<Ordering, PageError> {
    let Some(_) = kr.outline else {
        return Ok(kr.inline.cmp(key));
    };
    let n = kr.inline.len();
    let kp = &key[..key.len().min(n)];
    match kr.inline.cmp(kp) {
        Ordering::Equal => {}
        o => return Ok(o),
    }
    if key.len() <= n {
        // `key` is a prefix of the (longer) stored key.
        return Ok(Ordering::Greater);
    }
    Ok(full_key(walk, kr)?.as_slice().cmp(key))
}

/// Materializes a stored key (reading its extent if it is out of line).
pub(crate) fn full_key<F: File>(walk: &mut Walk<F>, kr: KeyRef<'_>) -> Result<Vec<u8>, PageError> {
    match kr.outline {
        None => Ok(kr.inline.to_vec()),
        Some((len, ext)) => {
            let k = walk.pager.extent(ext, len, KIND_KEY, &walk.bounds)?;
            if !k.starts_with(kr.inline) {
                return Err(mismatch(
                    u64::from(ext.page),
                    "key extent does not match the key prefix stored in the node",
                ));
            }
            Ok(k)
        }
    }
}

fn mkey<F: File>(walk: &mut Walk<F>, kr: KeyRef<'_>) -> Result<StoredKey, PageError> {
    Ok(StoredKey {
        bytes: full_key(walk, kr)?,
        ext: kr.outline.map(|(_, e)| e),
    })
}
