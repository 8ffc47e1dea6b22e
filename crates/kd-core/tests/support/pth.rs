//! PyTorch checkpoints written without PyTorch, for tests: the legacy `torch.save` container
//! (PyTorch 0.1.10 to 1.5, still read by every PyTorch and by burn's reader), which is a few
//! pickles in a row followed by the raw storages, so a test can build a `.pth` holding any
//! precision, any nesting and any value (NaN included) from tensors it computes.
//!
//! Included with `#[path]` by the test files that need it (kd-core's and the workspace's).

#![allow(dead_code)]

use std::path::Path;

/// The precision a tensor is stored in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// `torch.float32`.
    F32,
    /// `torch.float16` (`.half()`).
    F16,
    /// `torch.bfloat16`.
    BF16,
    /// `torch.float64` (`.double()`).
    F64,
}

impl Precision {
    fn storage(self) -> &'static str {
        match self {
            Precision::F32 => "FloatStorage",
            Precision::F16 => "HalfStorage",
            Precision::BF16 => "BFloat16Storage",
            Precision::F64 => "DoubleStorage",
        }
    }

    fn encode(self, values: &[f32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &v in values {
            match self {
                Precision::F32 => out.extend(v.to_le_bytes()),
                Precision::F16 => out.extend(f16_bits(v).to_le_bytes()),
                Precision::BF16 => out.extend(bf16_bits(v).to_le_bytes()),
                Precision::F64 => out.extend(f64::from(v).to_le_bytes()),
            }
        }
        out
    }

    /// A value as stored and read back (what a converted import holds).
    pub fn round(self, v: f32) -> f32 {
        match self {
            Precision::F32 | Precision::F64 => v,
            Precision::F16 => f16_value(f16_bits(v)),
            Precision::BF16 => f32::from_bits(u32::from(bf16_bits(v)) << 16),
        }
    }
}

/// IEEE half precision, rounding to nearest.
fn f16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let man = bits & 0x7f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if man != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = man | 0x80_0000;
        let shift = (14 - e) as u32;
        return sign | ((m + (1 << (shift - 1))) >> shift) as u16;
    }
    let rounded = (((e as u32) << 10) | (man >> 13)) + ((man >> 12) & 1);
    sign | rounded.min(0x7c00) as u16
}

fn f16_value(h: u16) -> f32 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = i32::from((h >> 10) & 0x1f);
    let man = f32::from(h & 0x3ff);
    sign * match exp {
        0 => man * 2f32.powi(-24),
        0x1f if man == 0.0 => f32::INFINITY,
        0x1f => f32::NAN,
        _ => (1.0 + man / 1024.0) * 2f32.powi(exp - 15),
    }
}

/// bfloat16, rounding to nearest even.
fn bf16_bits(x: f32) -> u16 {
    if x.is_nan() {
        return 0x7fc0;
    }
    let bits = x.to_bits();
    ((bits + 0x7fff + ((bits >> 16) & 1)) >> 16) as u16
}

/// One value of a saved object: a tensor or a dictionary of them.
#[derive(Debug, Clone)]
pub enum Node {
    /// A contiguous tensor.
    Tensor {
        /// Extents, outermost first.
        shape: Vec<usize>,
        /// Row-major values, written in `precision`.
        values: Vec<f32>,
        /// Storage precision.
        precision: Precision,
    },
    /// A dictionary (a state dict, or a wrapper around several).
    Dict(Vec<(String, Node)>),
}

/// Pickle protocol 2, just the opcodes a checkpoint needs.
struct Pickle {
    out: Vec<u8>,
    /// Each storage's element count and bytes.
    storages: Vec<(usize, Vec<u8>)>,
}

impl Pickle {
    fn new() -> Self {
        Pickle {
            out: vec![0x80, 2],
            storages: Vec::new(),
        }
    }
    fn op(&mut self, op: u8) {
        self.out.push(op);
    }
    fn str(&mut self, s: &str) {
        self.out.push(b'X');
        self.out.extend((s.len() as u32).to_le_bytes());
        self.out.extend(s.as_bytes());
    }
    fn int(&mut self, i: usize) {
        self.out.push(b'J');
        self.out
            .extend(i32::try_from(i).expect("small test tensors").to_le_bytes());
    }
    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend(format!("{module}\n{name}\n").as_bytes());
    }
    fn ints(&mut self, values: &[usize]) {
        self.op(b'(');
        for &v in values {
            self.int(v);
        }
        self.op(b't');
    }
    fn node(&mut self, node: &Node) {
        match node {
            Node::Dict(entries) => {
                self.op(b'}');
                self.op(b'(');
                for (key, value) in entries {
                    self.str(key);
                    self.node(value);
                }
                self.op(b'u');
            }
            Node::Tensor {
                shape,
                values,
                precision,
            } => {
                assert_eq!(shape.iter().product::<usize>(), values.len());
                let key = self.storages.len().to_string();
                self.storages.push((values.len(), precision.encode(values)));
                let mut stride = vec![1; shape.len()];
                for i in (0..shape.len().saturating_sub(1)).rev() {
                    stride[i] = stride[i + 1] * shape[i + 1];
                }
                self.global("torch._utils", "_rebuild_tensor_v2");
                self.op(b'(');
                // The storage, by persistent id.
                self.op(b'(');
                self.str("storage");
                self.global("torch", precision.storage());
                self.str(&key);
                self.str("cpu");
                self.int(values.len());
                self.op(b't');
                self.op(b'Q');
                self.int(0);
                self.ints(shape);
                self.ints(&stride);
                self.op(0x89); // requires_grad = False
                self.global("collections", "OrderedDict");
                self.op(b')');
                self.op(b'R');
                self.op(b't');
                self.op(b'R');
            }
        }
    }
    fn finish(mut self) -> Vec<u8> {
        self.op(b'.');
        self.out
    }
}

/// Writes `root` (a dictionary) as a legacy-container PyTorch checkpoint.
pub fn write_pth(path: &Path, root: &Node) {
    let mut bytes = Vec::new();
    // The magic number 0x1950a86a20f9469cfc6c as a LONG1, then protocol version 1001.
    bytes.extend([0x80, 2, 0x8a, 10]);
    bytes.extend([0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
    bytes.push(b'.');
    bytes.extend([0x80, 2, b'M', 0xe9, 0x03, b'.']);
    let mut sys_info = Pickle::new();
    sys_info.op(b'}');
    sys_info.str("little_endian");
    sys_info.op(0x88);
    sys_info.op(b's');
    bytes.extend(sys_info.finish());
    let mut main = Pickle::new();
    main.node(root);
    let storages = std::mem::take(&mut main.storages);
    bytes.extend(main.finish());
    let mut keys = Pickle::new();
    keys.op(b']');
    keys.op(b'(');
    for i in 0..storages.len() {
        keys.str(&i.to_string());
    }
    keys.op(b'e');
    bytes.extend(keys.finish());
    for (numel, storage) in &storages {
        // The element count PyTorch writes before each storage's bytes.
        bytes.extend((*numel as i64).to_le_bytes());
        bytes.extend(storage);
    }
    std::fs::write(path, bytes).unwrap();
}

/// Every tensor of a PyTorch file as `(key, shape, values as f32)`, sorted by key.
pub fn read_tensors(path: &Path) -> Vec<(String, Vec<usize>, Vec<f32>)> {
    let reader = burn::store::pytorch::PytorchReader::new(path).unwrap();
    let mut out: Vec<(String, Vec<usize>, Vec<f32>)> = reader
        .tensors()
        .iter()
        .filter(|(_, t)| format!("{:?}", t.dtype()) == "F32")
        .map(|(k, t)| {
            let bytes = t.read().unwrap();
            let values = bytes
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (k.clone(), t.shape().to_vec(), values)
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// A state dict of `tensors` (as [`read_tensors`] gives them) in `precision`, keys prefixed by
/// nothing: `Node::Dict` with one entry per tensor.
pub fn state_dict(tensors: &[(String, Vec<usize>, Vec<f32>)], precision: Precision) -> Node {
    Node::Dict(
        tensors
            .iter()
            .map(|(k, shape, values)| {
                (
                    k.clone(),
                    Node::Tensor {
                        shape: shape.clone(),
                        values: values.clone(),
                        precision,
                    },
                )
            })
            .collect(),
    )
}
