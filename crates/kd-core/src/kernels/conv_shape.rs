//! The shape of one 2-D convolution ([`ConvShape`]), as the kernels in this folder see it.
//!
//! Built from an NCHW input shape, an OIHW weight shape, stride, symmetric padding and groups;
//! every kernel (dense, depthwise, im2col) reads its sizes from here so the index arithmetic is
//! written once. [`valid_outputs`] is the one piece of padding logic: which output positions of a
//! row read inside the input for a given kernel offset.

/// Sizes of one convolution: input `[batch, in_channels, in_h, in_w]`, weight
/// `[out_channels, in_channels / groups, kernel_h, kernel_w]`, output
/// `[batch, out_channels, out_h, out_w]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    /// Images in the batch.
    pub batch: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Input height.
    pub in_h: usize,
    /// Input width.
    pub in_w: usize,
    /// Output channels.
    pub out_channels: usize,
    /// Kernel height.
    pub kernel_h: usize,
    /// Kernel width.
    pub kernel_w: usize,
    /// Stride (height, width).
    pub stride: [usize; 2],
    /// Zero padding on both sides (height, width).
    pub padding: [usize; 2],
    /// Channel groups.
    pub groups: usize,
    /// Output height.
    pub out_h: usize,
    /// Output width.
    pub out_w: usize,
}

impl ConvShape {
    /// The geometry of `conv2d(x, w)`, or `None` when the sizes do not describe one (channels not
    /// divisible by groups, a kernel larger than the padded input, a zero stride).
    pub fn new(
        x: [usize; 4],
        w: [usize; 4],
        stride: [usize; 2],
        padding: [usize; 2],
        groups: usize,
    ) -> Option<Self> {
        let [batch, in_channels, in_h, in_w] = x;
        let [out_channels, per_group, kernel_h, kernel_w] = w;
        if groups == 0
            || stride.contains(&0)
            || in_channels % groups != 0
            || out_channels % groups != 0
            || in_channels / groups != per_group
            || in_h + 2 * padding[0] < kernel_h
            || in_w + 2 * padding[1] < kernel_w
        {
            return None;
        }
        Some(Self {
            batch,
            in_channels,
            in_h,
            in_w,
            out_channels,
            kernel_h,
            kernel_w,
            stride,
            padding,
            groups,
            out_h: (in_h + 2 * padding[0] - kernel_h) / stride[0] + 1,
            out_w: (in_w + 2 * padding[1] - kernel_w) / stride[1] + 1,
        })
    }

    /// Input channels per group.
    pub fn in_per_group(&self) -> usize {
        self.in_channels / self.groups
    }

    /// Output channels per group.
    pub fn out_per_group(&self) -> usize {
        self.out_channels / self.groups
    }

    /// Elements of one input plane.
    pub fn in_plane(&self) -> usize {
        self.in_h * self.in_w
    }

    /// Elements of one output plane.
    pub fn out_plane(&self) -> usize {
        self.out_h * self.out_w
    }

    /// Elements of one kernel plane.
    pub fn kernel_plane(&self) -> usize {
        self.kernel_h * self.kernel_w
    }

    /// Rows of one group's im2col matrix: `in_per_group · kernel_h · kernel_w`, which is also the
    /// length of one output channel's weights.
    pub fn patch(&self) -> usize {
        self.in_per_group() * self.kernel_plane()
    }

    /// One filter per channel, each reading only its own channel (MobileNet, ShuffleNet).
    pub fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.in_channels && self.groups == self.out_channels
    }

    /// A 1×1 convolution with stride 1 and no padding: the input is its own im2col matrix.
    pub fn is_pointwise(&self) -> bool {
        self.kernel_h == 1 && self.kernel_w == 1 && self.stride == [1, 1] && self.padding == [0, 0]
    }

    /// Elements of the input tensor.
    pub fn input_len(&self) -> usize {
        self.batch * self.in_channels * self.in_plane()
    }

    /// Elements of the weight tensor.
    pub fn weight_len(&self) -> usize {
        self.out_channels * self.patch()
    }

    /// Elements of the output tensor.
    pub fn output_len(&self) -> usize {
        self.batch * self.out_channels * self.out_plane()
    }
}

/// The output positions `o` in `0..outputs` whose input position `o·stride + offset − pad` lies in
/// `0..inputs`, as a half-open range (empty when none does).
pub fn valid_outputs(
    offset: usize,
    pad: usize,
    stride: usize,
    inputs: usize,
    outputs: usize,
) -> (usize, usize) {
    let lo = if pad > offset {
        (pad - offset).div_ceil(stride)
    } else {
        0
    };
    let hi = if inputs + pad > offset {
        ((inputs - 1 + pad - offset) / stride + 1).min(outputs)
    } else {
        0
    };
    (lo.min(hi), hi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_sizes_follow_pytorch() {
        let g = ConvShape::new([2, 16, 32, 32], [32, 16, 3, 3], [2, 2], [1, 1], 1).unwrap();
        assert_eq!((g.out_h, g.out_w), (16, 16));
        let g = ConvShape::new([1, 8, 7, 5], [8, 1, 3, 3], [1, 1], [1, 1], 8).unwrap();
        assert_eq!((g.out_h, g.out_w), (7, 5));
        assert!(g.is_depthwise());
        assert!(
            ConvShape::new([1, 6, 4, 4], [6, 2, 1, 1], [1, 1], [0, 0], 3)
                .unwrap()
                .is_pointwise()
        );
    }

    #[test]
    fn inconsistent_sizes_are_refused() {
        assert!(ConvShape::new([1, 6, 4, 4], [6, 4, 1, 1], [1, 1], [0, 0], 3).is_none());
        assert!(ConvShape::new([1, 6, 2, 2], [6, 6, 5, 5], [1, 1], [1, 1], 1).is_none());
        assert!(ConvShape::new([1, 6, 4, 4], [6, 6, 1, 1], [0, 1], [0, 0], 1).is_none());
    }

    #[test]
    fn valid_outputs_match_a_brute_force_count() {
        for inputs in 1..9 {
            for stride in 1..4 {
                for pad in 0..3 {
                    for offset in 0..5 {
                        if inputs + 2 * pad < offset + 1 {
                            continue;
                        }
                        let outputs = (inputs + 2 * pad - (offset + 1)) / stride + 1;
                        let brute: Vec<usize> = (0..outputs)
                            .filter(|&o| {
                                let i = (o * stride + offset) as isize - pad as isize;
                                i >= 0 && (i as usize) < inputs
                            })
                            .collect();
                        let (lo, hi) = valid_outputs(offset, pad, stride, inputs, outputs);
                        assert_eq!((lo..hi).collect::<Vec<_>>(), brute);
                    }
                }
            }
        }
    }
}
