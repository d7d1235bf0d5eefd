//! A safety check of PyTorch pickles before they are read: every global a pickle names must be
//! one of the tensor-rebuild functions, storage classes and containers a state dict uses, and
//! no container may hold itself or nest deeper than [`MAX_DEPTH`].
//!
//! burn-store's reader never runs what a pickle names, but it reads an unknown call as an
//! opaque value and carries on; a file that asks for `os.system` is then refused only by
//! accident (no tensors), or not at all. This pass walks the opcodes with their stack effects
//! (strings and containers tracked, nothing evaluated), so a `STACK_GLOBAL` is resolved from
//! the strings really on the stack, and refuses the file naming the global it asked for.

use std::collections::HashMap;

/// Deepest nesting of containers accepted (Python's own recursion limit is 1,000).
pub const MAX_DEPTH: usize = 1000;

/// Upper bound on containment-graph steps spent looking for cycles (beyond it the pickle is
/// refused as too complex rather than scanned for minutes).
const MAX_CYCLE_WORK: usize = 50_000_000;

/// Globals a PyTorch state dict or training checkpoint may name: what
/// `torch.load(weights_only=True)` allows and burn-store understands.
pub fn allowed_global(module: &str, name: &str) -> bool {
    match module {
        "torch._utils" => matches!(
            name,
            "_rebuild_tensor"
                | "_rebuild_tensor_v2"
                | "_rebuild_tensor_v3"
                | "_rebuild_parameter"
                | "_rebuild_parameter_with_state"
        ),
        "torch._tensor" => name == "_rebuild_from_type_v2",
        "torch.nn.parameter" => name == "Parameter",
        "collections" => name == "OrderedDict",
        "builtins" | "__builtin__" => matches!(name, "set" | "frozenset"),
        "torch" => {
            name.ends_with("Storage") && name.chars().all(|c| c.is_ascii_alphanumeric())
                || matches!(
                    name,
                    "Size"
                        | "float16"
                        | "float32"
                        | "float64"
                        | "bfloat16"
                        | "int8"
                        | "int16"
                        | "int32"
                        | "int64"
                        | "uint8"
                        | "bool"
                        | "half"
                        | "float"
                        | "double"
                        | "long"
                        | "int"
                        | "short"
                )
        }
        _ => false,
    }
}

/// Why a pickle was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// It names a global outside [`allowed_global`]: `module.name`.
    Global(String),
    /// A container would hold itself.
    SelfReference,
    /// Containers nest deeper than [`MAX_DEPTH`].
    TooDeep,
    /// Bytes that are no pickle (unknown opcode, truncated, stack misuse): the reader would
    /// refuse them too, with its own message.
    Malformed(String),
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Global(g) => write!(
                f,
                "its pickle asks for the global '{g}', which is not one of the tensor-rebuild \
                 functions a state dict uses; refused (nothing in it was run)"
            ),
            Refusal::SelfReference => {
                write!(f, "its pickle holds a self-referencing container; refused")
            }
            Refusal::TooDeep => write!(
                f,
                "its pickle nests containers deeper than {MAX_DEPTH} levels; refused"
            ),
            Refusal::Malformed(m) => write!(f, "is not a valid pickle: {m}"),
        }
    }
}

#[derive(Clone, Debug)]
enum Value {
    Mark,
    Str(String),
    /// A container (list, dict, set, object built from `BUILD` state): its node id.
    Node(usize),
    Other,
}

/// The abstract machine: a stack of values, the memo, and the containment graph.
struct Scan<'a> {
    bytes: &'a [u8],
    pos: usize,
    stack: Vec<Value>,
    memo: HashMap<u64, Value>,
    /// Per node: its children and its depth (1 + the deepest child when built).
    children: Vec<Vec<usize>>,
    depth: Vec<usize>,
    work: usize,
}

type R<T> = std::result::Result<T, Refusal>;

fn malformed<T>(m: impl Into<String>) -> R<T> {
    Err(Refusal::Malformed(m.into()))
}

impl<'a> Scan<'a> {
    fn take(&mut self, n: usize) -> R<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.bytes.len());
        let Some(end) = end else {
            return malformed("truncated");
        };
        let s = &self.bytes[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn uint(&mut self, n: usize) -> R<u64> {
        let b = self.take(n)?;
        Ok(b.iter().rev().fold(0u64, |acc, &x| (acc << 8) | x as u64))
    }

    fn line(&mut self) -> R<String> {
        let rest = &self.bytes[self.pos..];
        let Some(n) = rest.iter().position(|&b| b == b'\n') else {
            return malformed("unterminated line");
        };
        let s = String::from_utf8_lossy(&rest[..n]).into_owned();
        self.pos += n + 1;
        Ok(s)
    }

    fn pop(&mut self) -> R<Value> {
        match self.stack.pop() {
            Some(Value::Mark) | None => malformed("stack underflow"),
            Some(v) => Ok(v),
        }
    }

    fn pop_mark(&mut self) -> R<Vec<Value>> {
        let Some(m) = self.stack.iter().rposition(|v| matches!(v, Value::Mark)) else {
            return malformed("no MARK");
        };
        let items = self.stack.split_off(m + 1);
        self.stack.pop();
        Ok(items)
    }

    fn new_node(&mut self, items: &[Value]) -> R<Value> {
        let id = self.children.len();
        self.children.push(Vec::new());
        self.depth.push(1);
        self.add(id, items)?;
        Ok(Value::Node(id))
    }

    /// Whether `target` is reachable from `from` in the containment graph.
    fn reaches(&mut self, from: usize, target: usize) -> R<bool> {
        let mut seen = vec![false; self.children.len()];
        let mut todo = vec![from];
        while let Some(n) = todo.pop() {
            if n == target {
                return Ok(true);
            }
            if std::mem::replace(&mut seen[n], true) {
                continue;
            }
            self.work += 1 + self.children[n].len();
            if self.work > MAX_CYCLE_WORK {
                return malformed("too many container links to check for cycles");
            }
            todo.extend(self.children[n].iter().copied());
        }
        Ok(false)
    }

    /// Puts `items` into container `target`, refusing cycles and deep nesting.
    fn add(&mut self, target: usize, items: &[Value]) -> R<()> {
        for item in items {
            if let Value::Node(child) = item {
                let child = *child;
                if self.reaches(child, target)? {
                    return Err(Refusal::SelfReference);
                }
                self.children[target].push(child);
                let d = self.depth[child] + 1;
                if d > MAX_DEPTH {
                    return Err(Refusal::TooDeep);
                }
                self.depth[target] = self.depth[target].max(d);
            }
        }
        Ok(())
    }

    /// The container on top of the stack, below what was just popped (APPEND, SETITEM,
    /// BUILD): a node, or a value that cannot hold anything we track.
    fn top_node(&self) -> R<Option<usize>> {
        match self.stack.last() {
            Some(Value::Node(n)) => Ok(Some(*n)),
            Some(Value::Mark) | None => malformed("stack underflow"),
            Some(_) => Ok(None),
        }
    }

    fn global(&mut self, module: &str, name: &str) -> R<()> {
        if allowed_global(module, name) {
            self.stack.push(Value::Other);
            Ok(())
        } else {
            Err(Refusal::Global(format!("{module}.{name}")))
        }
    }

    /// Runs one pickle up to its STOP.
    fn run(&mut self) -> R<()> {
        loop {
            let op = self.take(1)?[0];
            match op {
                b'(' => self.stack.push(Value::Mark),
                b'.' => return Ok(()),
                b'0' => {
                    self.stack
                        .pop()
                        .map_or_else(|| malformed("stack underflow"), |_| Ok(()))?;
                }
                b'1' => {
                    self.pop_mark()?;
                }
                b'2' => {
                    let top = self.stack.last().cloned();
                    match top {
                        Some(v) if !matches!(v, Value::Mark) => self.stack.push(v),
                        _ => return malformed("DUP of nothing"),
                    }
                }
                b'F' | b'I' | b'L' => {
                    self.line()?;
                    self.stack.push(Value::Other);
                }
                b'J' => {
                    self.take(4)?;
                    self.stack.push(Value::Other);
                }
                b'K' => {
                    self.take(1)?;
                    self.stack.push(Value::Other);
                }
                b'M' => {
                    self.take(2)?;
                    self.stack.push(Value::Other);
                }
                b'G' => {
                    self.take(8)?;
                    self.stack.push(Value::Other);
                }
                b'N' | 0x88 | 0x89 | b')' | 0x97 => self.stack.push(Value::Other),
                b'P' => {
                    self.line()?;
                    self.stack.push(Value::Other);
                }
                b'Q' | 0x98 => {
                    self.pop()?;
                    self.stack.push(Value::Other);
                }
                b'R' => {
                    // A call's result is opaque; its arguments stay reachable through it.
                    let args = self.pop()?;
                    self.pop()?;
                    let v = self.new_node(&[args])?;
                    self.stack.push(v);
                }
                b'S' => {
                    let l = self.line()?;
                    let s = l.trim_matches(|c| c == '\'' || c == '"').to_string();
                    self.stack.push(Value::Str(s));
                }
                b'V' => {
                    let l = self.line()?;
                    self.stack.push(Value::Str(l));
                }
                b'T' | b'X' => {
                    let n = self.uint(4)? as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.stack.push(Value::Str(s));
                }
                b'U' | 0x8c => {
                    let n = self.uint(1)? as usize;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.stack.push(Value::Str(s));
                }
                0x8d => {
                    let n = usize::try_from(self.uint(8)?)
                        .map_err(|_| Refusal::Malformed("length".into()))?;
                    let s = String::from_utf8_lossy(self.take(n)?).into_owned();
                    self.stack.push(Value::Str(s));
                }
                b'B' => {
                    let n = self.uint(4)? as usize;
                    self.take(n)?;
                    self.stack.push(Value::Other);
                }
                b'C' | 0x8a => {
                    let n = self.uint(1)? as usize;
                    self.take(n)?;
                    self.stack.push(Value::Other);
                }
                0x8b => {
                    let n = self.uint(4)? as usize;
                    self.take(n)?;
                    self.stack.push(Value::Other);
                }
                0x8e | 0x96 => {
                    let n = usize::try_from(self.uint(8)?)
                        .map_err(|_| Refusal::Malformed("length".into()))?;
                    self.take(n)?;
                    self.stack.push(Value::Other);
                }
                b'a' => {
                    let v = self.pop()?;
                    if let Some(t) = self.top_node()? {
                        self.add(t, &[v])?;
                    }
                }
                b'e' | 0x90 => {
                    let items = self.pop_mark()?;
                    if let Some(t) = self.top_node()? {
                        self.add(t, &items)?;
                    }
                }
                b's' => {
                    let v = self.pop()?;
                    let k = self.pop()?;
                    if let Some(t) = self.top_node()? {
                        self.add(t, &[k, v])?;
                    }
                }
                b'u' => {
                    let items = self.pop_mark()?;
                    if let Some(t) = self.top_node()? {
                        self.add(t, &items)?;
                    }
                }
                b'b' => {
                    let state = self.pop()?;
                    if let Some(t) = self.top_node()? {
                        self.add(t, &[state])?;
                    }
                }
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.global(&module, &name)?;
                }
                b'i' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    if !allowed_global(&module, &name) {
                        return Err(Refusal::Global(format!("{module}.{name}")));
                    }
                    let items = self.pop_mark()?;
                    let v = self.new_node(&items)?;
                    self.stack.push(v);
                }
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(m), Value::Str(n)) => self.global(&m, &n)?,
                        _ => return Err(Refusal::Global("<a name computed by the pickle>".into())),
                    }
                }
                0x82..=0x84 => {
                    // The copyreg extension registry names globals by number.
                    let n = self.uint(match op {
                        0x82 => 1,
                        0x83 => 2,
                        _ => 4,
                    })?;
                    return Err(Refusal::Global(format!("<copyreg extension {n}>")));
                }
                b'd' | b'l' | b't' | 0x91 => {
                    let items = self.pop_mark()?;
                    let v = self.new_node(&items)?;
                    self.stack.push(v);
                }
                b'o' => {
                    let items = self.pop_mark()?;
                    if items.is_empty() {
                        return malformed("OBJ without a class");
                    }
                    let v = self.new_node(&items)?;
                    self.stack.push(v);
                }
                b'}' | b']' | 0x8f => {
                    let v = self.new_node(&[])?;
                    self.stack.push(v);
                }
                0x85..=0x87 => {
                    let n = (op - 0x84) as usize;
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    let v = self.new_node(&items)?;
                    self.stack.push(v);
                }
                0x81 => {
                    let args = self.pop()?;
                    self.pop()?;
                    let v = self.new_node(&[args])?;
                    self.stack.push(v);
                }
                0x92 => {
                    let kwargs = self.pop()?;
                    let args = self.pop()?;
                    self.pop()?;
                    let v = self.new_node(&[args, kwargs])?;
                    self.stack.push(v);
                }
                b'g' => {
                    let l = self.line()?;
                    let idx: u64 = l
                        .trim()
                        .parse()
                        .map_err(|_| Refusal::Malformed("GET index".into()))?;
                    self.get(idx)?;
                }
                b'h' => {
                    let idx = self.uint(1)?;
                    self.get(idx)?;
                }
                b'j' => {
                    let idx = self.uint(4)?;
                    self.get(idx)?;
                }
                b'p' => {
                    let l = self.line()?;
                    let idx: u64 = l
                        .trim()
                        .parse()
                        .map_err(|_| Refusal::Malformed("PUT index".into()))?;
                    self.put(idx)?;
                }
                b'q' => {
                    let idx = self.uint(1)?;
                    self.put(idx)?;
                }
                b'r' => {
                    let idx = self.uint(4)?;
                    self.put(idx)?;
                }
                0x94 => {
                    let idx = self.memo.len() as u64;
                    self.put(idx)?;
                }
                0x80 => {
                    self.take(1)?;
                }
                0x95 => {
                    self.take(8)?;
                }
                other => {
                    return malformed(format!(
                        "unknown opcode 0x{other:02x} at byte {}",
                        self.pos - 1
                    ));
                }
            }
        }
    }

    fn get(&mut self, idx: u64) -> R<()> {
        match self.memo.get(&idx) {
            Some(v) => {
                let v = v.clone();
                self.stack.push(v);
                Ok(())
            }
            None => malformed(format!("memo entry {idx} read before it was written")),
        }
    }

    fn put(&mut self, idx: u64) -> R<()> {
        match self.stack.last() {
            Some(Value::Mark) | None => malformed("memo PUT of nothing"),
            Some(v) => {
                self.memo.insert(idx, v.clone());
                Ok(())
            }
        }
    }
}

/// Checks the pickle at the start of `bytes`; returns the length of that pickle (through its
/// STOP opcode), so a stream of pickles can be checked one after another.
pub fn check(bytes: &[u8]) -> Result<usize, Refusal> {
    let mut scan = Scan {
        bytes,
        pos: 0,
        stack: Vec::new(),
        memo: HashMap::new(),
        children: Vec::new(),
        depth: Vec::new(),
        work: 0,
    };
    scan.run()?;
    Ok(scan.pos)
}

/// Checks `count` pickles one after another at the start of `bytes` (the legacy format's magic
/// number, protocol, system info, object and storage keys; raw storage bytes follow them).
pub fn check_stream(bytes: &[u8], count: usize) -> Result<(), Refusal> {
    let mut at = 0;
    for _ in 0..count {
        at += check(&bytes[at..])?;
    }
    Ok(())
}
