//! A state dict as the file `torch.save(model.state_dict(), path)` writes (PyTorch 1.6 and
//! later): a zip archive, every entry stored uncompressed, holding `archive/data.pkl` (the
//! `OrderedDict` of tensors, pickle protocol 2), one `archive/data/<n>` per storage (raw
//! little-endian bytes, aligned to 64 bytes in the file as PyTorch aligns them), and the
//! `byteorder`, `version` (3), `.format_version` and `.storage_alignment` records.
//!
//! Each tensor is pickled as PyTorch pickles one: `torch._utils._rebuild_tensor_v2` over a
//! persistent storage reference `("storage", torch.FloatStorage | torch.LongStorage, "<n>",
//! "cpu", numel)`, offset 0, its size and contiguous stride, `requires_grad=False` and empty
//! backward hooks. Only the globals `torch.load(weights_only=True)` allows are named. The zip
//! container is the `zip` crate's (the crate burn's own PyTorch reader uses); the pickle opcodes
//! are the handful a state dict needs.

use std::io::Write;

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, ZipWriter};

use super::state_dict::{TorchTensor, TorchValues};

/// The folder inside the archive (what `torch.save` names it when writing to a buffer).
const ARCHIVE: &str = "archive";

/// The alignment of storages in the file, as PyTorch writes them.
const ALIGNMENT: u16 = 64;

/// Pickle protocol 2, the opcodes a state dict needs.
struct Pickle {
    out: Vec<u8>,
}

impl Pickle {
    fn op(&mut self, op: u8) {
        self.out.push(op);
    }

    fn str(&mut self, s: &str) {
        self.out.push(b'X'); // BINUNICODE
        let len = u32::try_from(s.len()).expect("a key shorter than 4 GiB");
        self.out.extend(len.to_le_bytes());
        self.out.extend(s.as_bytes());
    }

    fn int(&mut self, i: usize) {
        if let Ok(small) = u8::try_from(i) {
            self.out.extend([b'K', small]); // BININT1
        } else if let Ok(medium) = u16::try_from(i) {
            self.out.push(b'M'); // BININT2
            self.out.extend(medium.to_le_bytes());
        } else if let Ok(int) = i32::try_from(i) {
            self.out.push(b'J'); // BININT
            self.out.extend(int.to_le_bytes());
        } else {
            self.out.extend([0x8a, 8]); // LONG1, 8 bytes, two's complement
            self.out.extend((i as i64).to_le_bytes());
        }
    }

    fn global(&mut self, module: &str, name: &str) {
        self.out.push(b'c');
        self.out.extend(format!("{module}\n{name}\n").as_bytes());
    }

    fn tuple_of(&mut self, values: &[usize]) {
        self.op(b'('); // MARK
        for &v in values {
            self.int(v);
        }
        self.op(b't'); // TUPLE
    }

    /// `collections.OrderedDict()`.
    fn ordered_dict(&mut self) {
        self.global("collections", "OrderedDict");
        self.op(b')'); // EMPTY_TUPLE
        self.op(b'R'); // REDUCE
    }

    /// `_rebuild_tensor_v2(storage <n>, 0, shape, stride, False, OrderedDict())`.
    fn tensor(&mut self, storage: usize, tensor: &TorchTensor) {
        let storage_type = match tensor.values {
            TorchValues::F32(_) => "FloatStorage",
            TorchValues::I64(_) => "LongStorage",
        };
        let mut stride = vec![1; tensor.shape.len()];
        for i in (0..tensor.shape.len().saturating_sub(1)).rev() {
            stride[i] = stride[i + 1] * tensor.shape[i + 1];
        }
        self.global("torch._utils", "_rebuild_tensor_v2");
        self.op(b'(');
        self.op(b'(');
        self.str("storage");
        self.global("torch", storage_type);
        self.str(&storage.to_string());
        self.str("cpu");
        self.int(tensor.values.len());
        self.op(b't');
        self.op(b'Q'); // BINPERSID
        self.int(0);
        self.tuple_of(&tensor.shape);
        self.tuple_of(&stride);
        self.op(0x89); // NEWFALSE: requires_grad
        self.ordered_dict(); // backward hooks
        self.op(b't');
        self.op(b'R');
    }
}

/// The pickle of `OrderedDict([(key, tensor), ...])`, tensor `i` in storage `i`.
fn state_dict_pickle(tensors: &[TorchTensor]) -> Vec<u8> {
    let mut pickle = Pickle {
        out: vec![0x80, 2], // PROTO 2
    };
    pickle.ordered_dict();
    pickle.op(b'('); // MARK
    for (i, tensor) in tensors.iter().enumerate() {
        pickle.str(&tensor.key);
        pickle.tensor(i, tensor);
    }
    pickle.op(b'u'); // SETITEMS
    pickle.op(b'.'); // STOP
    pickle.out
}

/// Writes `tensors` to `sink` as a PyTorch zip checkpoint holding a bare state dict.
pub(super) fn write_pth<W: Write + std::io::Seek>(
    sink: W,
    tensors: &[TorchTensor],
) -> zip::result::ZipResult<W> {
    let mut zip = ZipWriter::new(sink);
    let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
    let record = |zip: &mut ZipWriter<W>, name: &str, bytes: &[u8]| {
        zip.start_file(format!("{ARCHIVE}/{name}"), stored)?;
        zip.write_all(bytes)?;
        Ok::<_, zip::result::ZipError>(())
    };
    record(&mut zip, "data.pkl", &state_dict_pickle(tensors))?;
    record(&mut zip, ".format_version", b"1")?;
    record(
        &mut zip,
        ".storage_alignment",
        ALIGNMENT.to_string().as_bytes(),
    )?;
    record(&mut zip, "byteorder", b"little")?;
    for (i, tensor) in tensors.iter().enumerate() {
        let bytes = tensor.values.to_le_bytes();
        let options = stored
            .with_alignment(ALIGNMENT)
            .large_file(bytes.len() >= u32::MAX as usize);
        zip.start_file(format!("{ARCHIVE}/data/{i}"), options)?;
        zip.write_all(&bytes)?;
    }
    record(&mut zip, "version", b"3\n")?;
    zip.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_use_the_shortest_opcode() {
        let mut p = Pickle { out: Vec::new() };
        p.int(7);
        p.int(300);
        p.int(70_000);
        p.int(1 << 40);
        assert_eq!(&p.out[..2], &[b'K', 7]);
        assert_eq!(&p.out[2..5], &[b'M', 44, 1]);
        assert_eq!(&p.out[5..10], &[b'J', 0x70, 0x11, 1, 0]);
        assert_eq!(&p.out[10..12], &[0x8a, 8]);
        assert_eq!(
            i64::from_le_bytes(p.out[12..20].try_into().unwrap()),
            1 << 40
        );
    }

    #[test]
    fn the_pickle_is_an_ordered_dict_of_rebuilt_tensors() {
        let tensors = vec![
            TorchTensor {
                key: "fc.weight".into(),
                shape: vec![2, 3],
                values: TorchValues::F32(vec![0.0; 6]),
            },
            TorchTensor {
                key: "bn.num_batches_tracked".into(),
                shape: vec![],
                values: TorchValues::I64(vec![0]),
            },
        ];
        let bytes = state_dict_pickle(&tensors);
        let text = String::from_utf8_lossy(&bytes);
        assert!(bytes.starts_with(&[0x80, 2, b'c']));
        assert!(bytes.ends_with(b"u."));
        assert!(text.contains("collections\nOrderedDict\n"));
        assert_eq!(
            text.matches("torch._utils\n_rebuild_tensor_v2\n").count(),
            2
        );
        assert!(text.contains("torch\nFloatStorage\n"));
        assert!(text.contains("torch\nLongStorage\n"));
        // fc.weight: size (2, 3), stride (3, 1).
        assert!(
            bytes
                .windows(10)
                .any(|w| w == [b'(', b'K', 2, b'K', 3, b't', b'(', b'K', 3, b'K'])
        );
    }
}
