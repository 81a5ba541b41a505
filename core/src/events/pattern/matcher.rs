//! Many patterns compiled into one matcher. Each rule alternative is indexed under one of its
//! conditions, its anchor: the one whose index bucket holds the fewest conditions so far (each
//! is confirmed whenever the bucket is hit), and among equals the narrower kind of test (an
//! exact value before a prefix, an indexed test before a scanned one). Indexes per field path: hash tables for exact
//! values and for each prefix or suffix length in use, an interval list for closed numeric
//! ranges, and a short scan for the rest (cidr, wildcard, open ranges). Alternatives with no
//! condition narrower than anything-but or exists are checked for every event. An event is
//! read once, only along the paths some rule names; each leaf looks up the anchors it
//! satisfies, and only those alternatives are confirmed against their other conditions
//! (`exists: false`, and the same-element rule for arrays of objects, included).

use foldhash::HashMap;

use serde_json::Value;

use super::event::{Flat, Found, Paths, consistent};
use super::{Leaf, Literal, Pattern, Range, Test};

/// The most leaves one alternative's same-element search may look at for one event. The
/// search backtracks over the leaves of arrays of objects, and leaves in unrelated arrays
/// multiply: an event built for it could otherwise take exponential time. An alternative
/// whose search runs out does not match.
const SEARCH_STEPS: usize = 100_000;

/// A compiled set of rules. Rules are identified by a key the caller chooses.
#[derive(Debug, Default, Clone)]
pub struct Matcher {
    paths: Paths,
    conditions: Vec<Cond>,
    alternatives: Vec<Alt>,
    /// Per path id.
    index: Vec<PathIndex>,
    /// Alternatives without an anchor (nothing narrower than anything-but or exists):
    /// checked for every event.
    always: Vec<usize>,
    /// The alternatives of each rule key.
    by_rule: HashMap<u64, Vec<usize>>,
    /// Alternatives by their conditions (written out), so rules with the same pattern share
    /// one: it is confirmed once per event however many rules it answers for.
    by_conditions: HashMap<String, usize>,
}

#[derive(Debug, Clone)]
struct Cond {
    alternative: usize,
    path: usize,
    tests: Vec<Test>,
    /// Also holds when the field is absent.
    absent_ok: bool,
    /// True for an alternative's anchor, the one condition in the index.
    anchor: bool,
}

impl Cond {
    fn accepts(&self, leaf: Leaf<'_>) -> bool {
        self.tests.iter().any(|t| t.accepts(leaf))
    }

    /// True when some leaf at the condition's path passes, wherever it sits.
    fn accepts_some_leaf(&self, flat: &Flat<'_>) -> bool {
        flat.found
            .iter()
            .filter(|f| f.path == self.path)
            .any(|f| self.accepts(flat.leaf(f)))
    }
}

#[derive(Debug, Clone)]
struct Alt {
    /// The rules it answers for, each flagged when that rule has other alternatives too (a
    /// `$or`, or one key inserted with different patterns): a match must then be checked
    /// against the rules already answered.
    rules: smallvec::SmallVec<[(u64, bool); 1]>,
    /// Condition ids, required ones first.
    conditions: Vec<usize>,
}

/// Conditions indexed by what they test, for one path.
#[derive(Debug, Default, Clone)]
struct PathIndex {
    strings: HashMap<String, Vec<usize>>,
    /// Keyed by the bits of the number (with -0 folded into 0).
    numbers: HashMap<u64, Vec<usize>>,
    trues: Vec<usize>,
    falses: Vec<usize>,
    nulls: Vec<usize>,
    prefixes: Affixes,
    suffixes: Affixes,
    folded_prefixes: Affixes,
    folded_suffixes: Affixes,
    folded: HashMap<String, Vec<usize>>,
    /// Closed numeric ranges.
    ranges: Ranges,
    /// Tests checked one by one: open ranges, cidr, wildcard, anything-but, exists.
    scanned: Vec<(Test, usize)>,
}

/// Closed numeric ranges sorted by their low bound, and the widest width: a value can only
/// fall in ranges whose low bound lies within that width below it.
#[derive(Debug, Default, Clone)]
struct Ranges {
    items: Vec<(Range, usize)>,
    widest: f64,
}

impl Ranges {
    fn bounds(range: &Range) -> Option<(f64, f64)> {
        Some((range.low?.0, range.high?.0))
    }

    fn add(&mut self, range: Range, condition: usize) {
        let Some((low, high)) = Ranges::bounds(&range) else {
            return;
        };
        let at = self
            .items
            .partition_point(|(r, _)| Ranges::bounds(r).is_some_and(|(l, _)| l <= low));
        self.items.insert(at, (range, condition));
        self.widest = self.widest.max(high - low);
    }

    fn hits(&self, n: f64, hit: &mut impl FnMut(usize)) {
        let end = self
            .items
            .partition_point(|(r, _)| Ranges::bounds(r).is_some_and(|(l, _)| l <= n));
        for (range, condition) in self.items.get(..end).unwrap_or_default().iter().rev() {
            if Ranges::bounds(range).is_some_and(|(l, _)| l < n - self.widest) {
                break;
            }
            if range.contains(n) {
                hit(*condition);
            }
        }
    }

    /// How many ranges overlap `range` (an anchor's expected load).
    fn overlapping(&self, range: &Range) -> usize {
        let Some((low, high)) = Ranges::bounds(range) else {
            return self.items.len();
        };
        self.items
            .iter()
            .filter(|(r, _)| Ranges::bounds(r).is_some_and(|(l, h)| l <= high && h >= low))
            .count()
    }
}

/// Prefixes (or suffixes) by text, and the lengths in use, so a value is looked up once per
/// length rather than once per character.
#[derive(Debug, Default, Clone)]
struct Affixes {
    by_text: HashMap<String, Vec<usize>>,
    lengths: Vec<usize>,
}

impl Affixes {
    fn add(&mut self, text: &str, condition: usize) {
        self.by_text
            .entry(text.to_owned())
            .or_default()
            .push(condition);
        if let Err(at) = self.lengths.binary_search(&text.len()) {
            self.lengths.insert(at, text.len());
        }
    }

    fn hits(&self, value: &str, suffix: bool, hit: &mut impl FnMut(usize)) {
        for &len in &self.lengths {
            if len > value.len() {
                break;
            }
            let part = if suffix {
                value.get(value.len() - len..)
            } else {
                value.get(..len)
            };
            if let Some(list) = part.and_then(|p| self.by_text.get(p)) {
                list.iter().copied().for_each(&mut *hit);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.lengths.is_empty()
    }
}

fn number_key(n: f64) -> u64 {
    if n == 0.0 { 0 } else { n.to_bits() }
}

impl PathIndex {
    fn add(&mut self, test: &Test, condition: usize) {
        match test {
            Test::Exact(Literal::Str(s)) => {
                self.strings.entry(s.clone()).or_default().push(condition);
            }
            Test::Exact(Literal::Num(n)) => self
                .numbers
                .entry(number_key(*n))
                .or_default()
                .push(condition),
            Test::Exact(Literal::Bool(true)) => self.trues.push(condition),
            Test::Exact(Literal::Bool(false)) => self.falses.push(condition),
            Test::Exact(Literal::Null) => self.nulls.push(condition),
            Test::Prefix(p) => self.prefixes.add(p, condition),
            Test::Suffix(p) => self.suffixes.add(p, condition),
            Test::PrefixIgnoreCase(p) => self.folded_prefixes.add(p, condition),
            Test::SuffixIgnoreCase(p) => self.folded_suffixes.add(p, condition),
            Test::EqualsIgnoreCase(p) => self.folded.entry(p.clone()).or_default().push(condition),
            Test::Numeric(r) if Ranges::bounds(r).is_some() => self.ranges.add(*r, condition),
            // Absence is not a value: `exists: false` is confirmed after the lookups.
            Test::Exists(false) => {}
            other => self.scanned.push((other.clone(), condition)),
        }
    }

    /// How narrow `test` is as an anchor (higher is narrower): exact values, then indexed
    /// prefixes, suffixes and ranges, then scanned tests; anything-but, exists and empty
    /// affixes let (nearly) everything through. Then the load its bucket already carries.
    fn anchor_rank(&self, test: &Test) -> (u8, std::cmp::Reverse<usize>) {
        let load = |list: Option<&Vec<usize>>| std::cmp::Reverse(list.map_or(0, Vec::len));
        match test {
            Test::Exact(Literal::Str(s)) => (4, load(self.strings.get(s))),
            Test::Exact(Literal::Num(n)) => (4, load(self.numbers.get(&number_key(*n)))),
            Test::EqualsIgnoreCase(p) => (3, load(self.folded.get(p))),
            Test::Prefix(p) if !p.is_empty() => (3, load(self.prefixes.by_text.get(p))),
            Test::Suffix(p) if !p.is_empty() => (3, load(self.suffixes.by_text.get(p))),
            Test::Numeric(r) if Ranges::bounds(r).is_some() => {
                (3, std::cmp::Reverse(self.ranges.overlapping(r)))
            }
            Test::Exact(Literal::Bool(true)) => (2, load(Some(&self.trues))),
            Test::Exact(Literal::Bool(false)) => (2, load(Some(&self.falses))),
            Test::Exact(Literal::Null) => (2, load(Some(&self.nulls))),
            Test::PrefixIgnoreCase(p) if !p.is_empty() => {
                (2, load(self.folded_prefixes.by_text.get(p)))
            }
            Test::SuffixIgnoreCase(p) if !p.is_empty() => {
                (2, load(self.folded_suffixes.by_text.get(p)))
            }
            Test::Wildcard(_) | Test::Numeric(_) | Test::Cidr(_) => {
                (1, std::cmp::Reverse(self.scanned.len()))
            }
            _ => (0, std::cmp::Reverse(usize::MAX)),
        }
    }

    /// Calls `hit` with every condition `leaf` satisfies (possibly more than once).
    fn hits(&self, leaf: Leaf<'_>, hit: &mut impl FnMut(usize)) {
        match leaf {
            Leaf::Str(s) => {
                if let Some(list) = self.strings.get(s) {
                    list.iter().copied().for_each(&mut *hit);
                }
                self.prefixes.hits(s, false, hit);
                self.suffixes.hits(s, true, hit);
                if !(self.folded.is_empty()
                    && self.folded_prefixes.is_empty()
                    && self.folded_suffixes.is_empty())
                {
                    let lower = s.to_lowercase();
                    if let Some(list) = self.folded.get(&lower) {
                        list.iter().copied().for_each(&mut *hit);
                    }
                    self.folded_prefixes.hits(&lower, false, hit);
                    self.folded_suffixes.hits(&lower, true, hit);
                }
            }
            Leaf::Num(n) => {
                if let Some(list) = self.numbers.get(&number_key(n)) {
                    list.iter().copied().for_each(&mut *hit);
                }
                self.ranges.hits(n, hit);
            }
            Leaf::Bool(true) => self.trues.iter().copied().for_each(&mut *hit),
            Leaf::Bool(false) => self.falses.iter().copied().for_each(&mut *hit),
            Leaf::Null => self.nulls.iter().copied().for_each(&mut *hit),
        }
        for (test, condition) in &self.scanned {
            if test.accepts(leaf) {
                hit(*condition);
            }
        }
    }
}

/// Per-call working state, reusable across events of one matcher.
#[derive(Debug, Default)]
pub struct Scratch {
    epoch: u32,
    alternative_seen: Vec<u32>,
    path_seen: Vec<u32>,
    touched: Vec<usize>,
}

impl Scratch {
    fn start(&mut self, matcher: &Matcher) {
        let sizes = (matcher.alternatives.len(), matcher.index.len());
        if self.alternative_seen.len() != sizes.0
            || self.path_seen.len() != sizes.1
            || self.epoch == u32::MAX
        {
            self.alternative_seen = vec![0; sizes.0];
            self.path_seen = vec![0; sizes.1];
            self.epoch = 0;
        }
        self.epoch += 1;
        self.touched.clear();
    }
}

impl Matcher {
    /// An empty matcher.
    #[must_use]
    pub fn new() -> Self {
        Matcher::default()
    }

    /// Adds a rule under `rule`. A key may be used twice; it then matches when either does.
    pub fn insert(&mut self, rule: u64, pattern: &Pattern) {
        for conditions in &pattern.alternatives {
            let written = format!("{conditions:?}");
            let alternative = if let Some(&existing) = self.by_conditions.get(&written) {
                existing
            } else {
                let new = self.add_alternative(conditions);
                self.by_conditions.insert(written, new);
                new
            };
            let siblings = self.by_rule.entry(rule).or_default();
            if siblings.contains(&alternative) {
                continue;
            }
            siblings.push(alternative);
            let shared = siblings.len() > 1;
            if let Some(alt) = self.alternatives.get_mut(alternative) {
                alt.rules.push((rule, shared));
            }
            if shared {
                for alt in siblings.iter() {
                    if let Some(a) = self.alternatives.get_mut(*alt) {
                        for entry in a.rules.iter_mut().filter(|(r, _)| *r == rule) {
                            entry.1 = true;
                        }
                    }
                }
            }
        }
    }

    /// Compiles one alternative (a conjunction of conditions) and indexes it under its
    /// anchor; answers for no rule yet.
    fn add_alternative(&mut self, conditions: &[super::Condition]) -> usize {
        let alternative = self.alternatives.len();
        let mut ids: Vec<usize> = Vec::with_capacity(conditions.len());
        for condition in conditions {
            let path = self.paths.id(&condition.path);
            if self.index.len() < self.paths.len() {
                self.index.resize_with(self.paths.len(), PathIndex::default);
            }
            ids.push(self.conditions.len());
            self.conditions.push(Cond {
                alternative,
                path,
                tests: condition.tests.clone(),
                absent_ok: condition.holds_when_absent(),
                anchor: false,
            });
        }
        ids.sort_by_key(|id| self.conditions.get(*id).is_some_and(|c| c.absent_ok));
        let anchor = ids
            .iter()
            .filter_map(|id| {
                let cond = self.conditions.get(*id).filter(|c| !c.absent_ok)?;
                let index = self.index.get(cond.path)?;
                // A condition is as wide as its widest test.
                let (class, load) = cond.tests.iter().map(|t| index.anchor_rank(t)).min()?;
                // Fewest conditions sharing the bucket first (each is confirmed whenever
                // the bucket is hit), then the narrower kind of test.
                Some(((class > 0, load, class), *id))
            })
            .max_by_key(|(rank, _)| *rank)
            .filter(|((usable, _, _), _)| *usable)
            .map(|(_, id)| id);
        match anchor {
            Some(id) => {
                if let Some(cond) = self.conditions.get_mut(id) {
                    cond.anchor = true;
                    if let Some(index) = self.index.get_mut(cond.path) {
                        for test in &cond.tests {
                            index.add(test, id);
                        }
                    }
                }
            }
            None => self.always.push(alternative),
        }
        self.alternatives.push(Alt {
            rules: smallvec::SmallVec::new(),
            conditions: ids,
        });
        alternative
    }

    /// How many distinct rule alternatives the matcher holds (rules with the same pattern
    /// share theirs).
    #[must_use]
    pub fn len(&self) -> usize {
        self.alternatives.len()
    }

    /// True when no rule was added.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.alternatives.is_empty()
    }

    /// The keys of the rules `event` matches, each once, in no particular order.
    #[must_use]
    pub fn matching(&self, event: &Value) -> Vec<u64> {
        let mut scratch = Scratch::default();
        let mut out = Vec::new();
        self.matching_with(event, &mut scratch, &mut out);
        out
    }

    /// [`Matcher::matching`] into `out` (cleared first), reusing `scratch` between events.
    pub fn matching_with(&self, event: &Value, scratch: &mut Scratch, out: &mut Vec<u64>) {
        let mut flat = Flat::default();
        flat.read(&self.paths, event);
        self.match_flat(&flat, scratch, out);
    }

    /// [`Matcher::matching_with`] straight from the event's JSON text: only what leads to a
    /// path some rule names is parsed; the rest is skipped (and not checked).
    ///
    /// # Errors
    /// `InvalidArgument` when the text is not a JSON object, as far as it was read.
    pub fn matching_bytes(
        &self,
        event: &[u8],
        scratch: &mut Scratch,
        out: &mut Vec<u64>,
    ) -> crate::error::Result<()> {
        let mut flat = Flat::default();
        flat.scan(&self.paths, event)?;
        self.match_flat(&flat, scratch, out);
        Ok(())
    }

    fn match_flat(&self, flat: &Flat<'_>, scratch: &mut Scratch, out: &mut Vec<u64>) {
        out.clear();
        scratch.start(self);
        let epoch = scratch.epoch;
        for found in &flat.found {
            if let Some(seen) = scratch.path_seen.get_mut(found.path) {
                *seen = epoch;
            }
            let Some(index) = self.index.get(found.path) else {
                continue;
            };
            index.hits(flat.leaf(found), &mut |condition| {
                self.touch(condition, scratch);
            });
        }
        let candidates = scratch
            .touched
            .iter()
            .copied()
            .chain(self.always.iter().copied());
        for alt in candidates {
            let Some(alternative) = self.alternatives.get(alt) else {
                continue;
            };
            // Only a rule with several alternatives can be answered twice.
            let answered = |(rule, shared): &(u64, bool)| *shared && out.contains(rule);
            if alternative.rules.iter().all(answered) || !self.confirm(alternative, flat, scratch) {
                continue;
            }
            for &(rule, shared) in &alternative.rules {
                if !(shared && out.contains(&rule)) {
                    out.push(rule);
                }
            }
        }
    }

    /// Notes the alternative whose anchor `condition` a leaf satisfied.
    fn touch(&self, condition: usize, scratch: &mut Scratch) {
        let Some(alt) = self.conditions.get(condition).map(|c| c.alternative) else {
            return;
        };
        if let Some(seen) = scratch.alternative_seen.get_mut(alt)
            && *seen != scratch.epoch
        {
            *seen = scratch.epoch;
            scratch.touched.push(alt);
        }
    }

    /// Checks a candidate alternative (its anchor hit, or it has none) against its other
    /// conditions: those that hold when absent included, and (when arrays of objects are
    /// involved) one element per match.
    fn confirm(&self, alternative: &Alt, flat: &Flat<'_>, scratch: &Scratch) -> bool {
        if !flat.has_elements() {
            return alternative.conditions.iter().all(|id| {
                let Some(cond) = self.conditions.get(*id) else {
                    return false;
                };
                if cond.anchor {
                    // The index found a leaf it accepts.
                    return true;
                }
                if scratch.path_seen.get(cond.path) != Some(&scratch.epoch) {
                    return cond.absent_ok;
                }
                cond.accepts_some_leaf(flat)
            });
        }
        // Each required condition needs some leaf it accepts, wherever it sits: checked first,
        // it settles most misses without the search.
        let possible = alternative.conditions.iter().all(|id| {
            self.conditions
                .get(*id)
                .is_some_and(|cond| cond.absent_ok || cond.accepts_some_leaf(flat))
        });
        if !possible {
            return false;
        }
        let mut chosen: Vec<&[(u32, u32)]> = Vec::new();
        let mut budget = SEARCH_STEPS;
        self.search(&alternative.conditions, flat, &mut chosen, &mut budget)
    }

    /// Picks, condition by condition, a leaf consistent with those picked so far. Each leaf
    /// looked at spends a step of `budget`; when it runs out the search fails.
    fn search<'f>(
        &self,
        conditions: &[usize],
        flat: &'f Flat<'_>,
        chosen: &mut Vec<&'f [(u32, u32)]>,
        budget: &mut usize,
    ) -> bool {
        let Some((first, rest)) = conditions.split_first() else {
            return true;
        };
        let Some(cond) = self.conditions.get(*first) else {
            return false;
        };
        let mut present = false;
        for found in flat
            .found
            .iter()
            .filter(|f: &&Found<'_>| f.path == cond.path)
        {
            let Some(left) = budget.checked_sub(1) else {
                return false;
            };
            *budget = left;
            let elements = flat.elements_of(found);
            if !chosen.iter().all(|c| consistent(c, elements)) {
                continue;
            }
            present = true;
            if cond.accepts(flat.leaf(found)) {
                chosen.push(elements);
                let ok = self.search(rest, flat, chosen, budget);
                chosen.pop();
                if ok {
                    return true;
                }
            }
        }
        cond.absent_ok && !present && self.search(rest, flat, chosen, budget)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_same_element_search_is_bounded() {
        // Each condition holds somewhere, never all within one element of `t`: without a
        // bound, the search tries every combination of elements of `p`, `q`, `r` and `s`
        // (30^4) before each of `t`'s, for hundreds of millions of steps.
        let plain: Vec<serde_json::Value> =
            (0..30).map(|_| serde_json::json!({"a": "1"})).collect();
        let mut last: Vec<serde_json::Value> = (1..30)
            .map(|_| serde_json::json!({"a": "1", "b": "0"}))
            .collect();
        last.insert(0, serde_json::json!({"a": "0", "b": "1"}));
        let event = serde_json::json!({"p": plain, "q": plain, "r": plain, "s": plain, "t": last});
        let mut m = Matcher::new();
        let pattern = r#"{"p": {"a": ["1"]}, "q": {"a": ["1"]}, "r": {"a": ["1"]},
            "s": {"a": ["1"]}, "t": {"a": ["1"], "b": ["1"]}}"#;
        m.insert(1, &Pattern::parse(pattern).unwrap());
        assert!(m.matching(&event).is_empty());
        // The same rule matches once one element of `t` has both.
        let mut both = event.clone();
        both["t"][5]["b"] = serde_json::json!("1");
        assert_eq!(m.matching(&both), [1]);
    }

    #[test]
    fn a_rule_is_answered_once_however_many_of_its_alternatives_match() {
        let mut m = Matcher::new();
        let or = Pattern::parse(r#"{"$or": [{"a": ["x"]}, {"b": [{"prefix": "y"}]}]}"#).unwrap();
        m.insert(1, &or);
        m.insert(2, &Pattern::parse(r#"{"a": ["x"]}"#).unwrap());
        m.insert(2, &Pattern::parse(r#"{"b": ["yes"]}"#).unwrap());
        m.insert(3, &Pattern::parse(r#"{"a": ["x"]}"#).unwrap());
        let mut hits = m.matching(&serde_json::json!({"a": "x", "b": "yes"}));
        hits.sort_unstable();
        assert_eq!(hits, [1, 2, 3]);
        let mut hits = m.matching(&serde_json::json!({"b": "yes"}));
        hits.sort_unstable();
        assert_eq!(hits, [1, 2]);
    }
}
