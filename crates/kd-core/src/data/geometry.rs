//! What a split looks like, read from headers and file sizes only: image count, channels, size,
//! classes ([`Geometry`]); and how many images each class has, from label bytes and folder
//! listings ([`DataSource::class_counts`]). The plan uses them to size networks, check shapes
//! and count what per-class limits leave, before loading any pixels.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use serde::Serialize;

use super::base::{DataFormat, Split};
use super::cifar::{self, CifarKind};
use super::error::DataError;
use super::folder::{self, Classes};
use super::idx::{self, IDX_CLASSES, checked_labels};
use super::source::DataSource;

/// Shape of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Geometry {
    /// Number of images.
    pub count: usize,
    /// Channels per image.
    pub channels: usize,
    /// Image height.
    pub height: usize,
    /// Image width.
    pub width: usize,
    /// Classes of the dataset.
    pub num_classes: usize,
}

fn idx_header(path: &Path) -> Result<[usize; 3], DataError> {
    let io = |e| DataError::io(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut magic = [0u8; 2];
    file.read_exact(&mut magic).map_err(io)?;
    file.seek(SeekFrom::Start(0)).map_err(io)?;
    let file = std::io::BufReader::new(file);
    let mut reader: Box<dyn Read> = if magic == [0x1f, 0x8b] {
        Box::new(flate2::read::GzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut head = [0u8; 16];
    reader.read_exact(&mut head).map_err(io)?;
    let word = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
    if word(0) != 0x0000_0803 {
        return Err(DataError::BadMagic {
            path: path.into(),
            found: word(0),
            expected: "00 00 08 03 (IDX, unsigned bytes, 3 dimensions)".into(),
        });
    }
    idx::zero_sized_images(path, word(8) as usize, word(12) as usize)?;
    Ok([word(4) as usize, word(8) as usize, word(12) as usize])
}

impl DataSource {
    /// The geometry of `split`, from headers, file sizes and (for folders) image headers.
    pub fn geometry(&self, split: Split) -> Result<Geometry, DataError> {
        let paths = self.split_paths(split)?;
        match self.format {
            DataFormat::Idx => {
                let [count, height, width] = idx_header(&paths[0])?;
                Ok(Geometry {
                    count,
                    channels: 1,
                    height,
                    width,
                    num_classes: 10,
                })
            }
            DataFormat::Cifar10 | DataFormat::Cifar100 => {
                let (record, num_classes) = if self.format == DataFormat::Cifar10 {
                    (3073, 10)
                } else {
                    (3074, 100)
                };
                let mut count = 0;
                for path in &paths {
                    let size = std::fs::metadata(path)
                        .map_err(|e| DataError::io(path, e))?
                        .len();
                    count += (size / record) as usize;
                }
                Ok(Geometry {
                    count,
                    channels: 3,
                    height: 32,
                    width: 32,
                    num_classes,
                })
            }
            DataFormat::Folder => {
                folder_geometry(&paths[0], &Classes::for_split(&self.root, split)?)
            }
        }
    }

    /// Images per class of `split` (index = label), from label bytes and folder listings; no
    /// pixel is read. The plan counts what per-class limits leave with it.
    ///
    /// # Errors
    /// The readers' errors about labels: a label out of range (with its byte offset), an IDX
    /// label file whose count differs from its image file's, a CIFAR file that is not a whole
    /// number of records, a class folder the training split lacks.
    pub fn class_counts(&self, split: Split) -> Result<Vec<usize>, DataError> {
        let paths = self.split_paths(split)?;
        let (labels, num_classes) = match self.format {
            DataFormat::Idx => {
                let array = idx::read_idx(&paths[1], 1)?;
                let [n_images, _, _] = idx_header(&paths[0])?;
                if n_images != array.dims[0] {
                    return Err(DataError::CountMismatch {
                        images: paths[0].clone(),
                        labels: paths[1].clone(),
                        n_images: n_images as u64,
                        n_labels: array.dims[0] as u64,
                    });
                }
                let labels =
                    checked_labels(&paths[1], &array.data, array.header_len, 1, IDX_CLASSES)?;
                (labels, IDX_CLASSES)
            }
            DataFormat::Cifar10 | DataFormat::Cifar100 => {
                let kind = if self.format == DataFormat::Cifar10 {
                    CifarKind::Cifar10
                } else {
                    CifarKind::Cifar100
                };
                let mut labels = Vec::new();
                for path in &paths {
                    labels.extend(cifar::read_labels(path, kind)?);
                }
                (labels, kind.num_classes())
            }
            DataFormat::Folder => {
                let classes = Classes::for_split(&self.root, split)?;
                let labels = folder::list_images(&paths[0], &classes)?
                    .into_iter()
                    .map(|(_, label)| label)
                    .collect();
                (labels, classes.names.len())
            }
        };
        let mut counts = vec![0; num_classes];
        for label in labels {
            counts[label as usize] += 1;
        }
        Ok(counts)
    }
}

fn folder_geometry(dir: &Path, classes: &Classes) -> Result<Geometry, DataError> {
    let (mut count, mut size, mut colour) = (0, None, false);
    for (path, _) in folder::list_images(dir, classes)? {
        let decode = |e: image::ImageError| DataError::Decode {
            path: path.clone(),
            message: e.to_string(),
        };
        let decoder = image::ImageReader::open(&path)
            .map_err(|e| DataError::io(&path, e))?
            .with_guessed_format()
            .map_err(|e| DataError::io(&path, e))?
            .into_decoder()
            .map_err(decode)?;
        use image::ImageDecoder;
        colour |= decoder.color_type().has_color();
        size.get_or_insert(decoder.dimensions());
        count += 1;
    }
    let Some((width, height)) = size else {
        return Err(DataError::Missing {
            path: dir.into(),
            message: "no PNG or JPEG files in class folders".into(),
        });
    };
    Ok(Geometry {
        count,
        channels: if colour { 3 } else { 1 },
        height: height as usize,
        width: width as usize,
        num_classes: classes.names.len(),
    })
}
