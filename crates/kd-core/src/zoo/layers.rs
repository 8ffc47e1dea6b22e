//! Building blocks shared by the zoo's architectures.
//!
//! Owns the constructors that reproduce the reference PyTorch initialisations (He-normal with
//! fan-out, PyTorch's default Kaiming-uniform, the VGG/MobileNet linear init), the [`Layer`] enum
//! that stands in for `nn.Sequential` so state-dict indices (`downsample.0.weight`) line up one to
//! one, and the channel shuffle of the ShuffleNets. Every file in `zoo/` calls into this one.

use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AvgPool2d, AvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::ops::ConvOptions;
use burn::tensor::{Device, Tensor};

use crate::kernels;

/// How a convolution's weights are drawn, after the reference definition of each architecture.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvInit {
    /// `normal(0, sqrt(2 / (k·k·out_channels)))`: `kaiming_normal_(mode='fan_out')` in the CIFAR
    /// ResNets, and the explicit loop of WRN, VGG and MobileNetV2. PyTorch's fan-out does not
    /// divide by `groups`, so neither does this.
    HeFanOut,
    /// PyTorch's default for `nn.Conv2d`: `kaiming_uniform_(a=√5)`, i.e. `U(±1/√fan_in)` with
    /// `fan_in = in/groups·k·k`; the bias, if any, draws from the same bound.
    TorchDefault,
}

/// How a classifier's weights are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinearInit {
    /// PyTorch's default for `nn.Linear`: weight and bias `U(±1/√fan_in)`.
    TorchDefault,
    /// PyTorch's default weight, bias zeroed (WRN).
    TorchDefaultZeroBias,
    /// `normal(0, 0.01)` weight, zero bias (VGG, MobileNetV2).
    Normal001ZeroBias,
}

/// Geometry of one convolution, as `nn.Conv2d(in, out, kernel, stride, padding, groups, bias)`.
#[derive(Debug, Clone, Copy)]
pub struct ConvSpec {
    /// Input channels.
    pub input: usize,
    /// Output channels.
    pub output: usize,
    /// Square kernel size.
    pub kernel: usize,
    /// Stride in both directions.
    pub stride: usize,
    /// Zero padding on every side.
    pub padding: usize,
    /// Channel groups (`input` for a depthwise convolution).
    pub groups: usize,
    /// Whether the convolution has a bias.
    pub bias: bool,
}

impl ConvSpec {
    /// A bias-free convolution with `padding = kernel / 2`, stride 1, one group.
    pub fn new(input: usize, output: usize, kernel: usize) -> Self {
        Self {
            input,
            output,
            kernel,
            stride: 1,
            padding: kernel / 2,
            groups: 1,
            bias: false,
        }
    }

    /// The same convolution with another stride.
    pub fn stride(mut self, stride: usize) -> Self {
        self.stride = stride;
        self
    }

    /// The same convolution with another padding.
    pub fn padding(mut self, padding: usize) -> Self {
        self.padding = padding;
        self
    }

    /// The same convolution split into `groups` groups.
    pub fn groups(mut self, groups: usize) -> Self {
        self.groups = groups;
        self
    }

    /// The same convolution with a bias.
    pub fn with_bias(mut self) -> Self {
        self.bias = true;
        self
    }

    /// Builds the layer with the given initialisation.
    pub fn init(self, init: ConvInit, device: &Device) -> Conv2d {
        let initializer = match init {
            ConvInit::HeFanOut => {
                let fan_out = (self.kernel * self.kernel * self.output) as f64;
                Initializer::Normal {
                    mean: 0.0,
                    std: (2.0 / fan_out).sqrt(),
                }
            }
            ConvInit::TorchDefault => Initializer::KaimingUniform {
                gain: 1.0 / 3f64.sqrt(),
                fan_out_only: false,
            },
        };
        let mut conv = Conv2dConfig::new([self.input, self.output], [self.kernel, self.kernel])
            .with_stride([self.stride, self.stride])
            .with_padding(PaddingConfig2d::Explicit(
                self.padding,
                self.padding,
                self.padding,
                self.padding,
            ))
            .with_groups(self.groups)
            .with_bias(self.bias)
            .with_initializer(initializer)
            .init(device);
        if self.bias && init == ConvInit::HeFanOut {
            // The reference init loops zero every conv bias they re-initialise.
            conv.bias = Some(Initializer::Zeros.init([self.output], device));
        }
        conv
    }
}

/// `conv(x)`: the layer's forward, computed by [`crate::kernels::conv2d`] (kd's own kernels on
/// flex, burn's `conv2d` elsewhere). Every convolution in the zoo runs through here.
///
/// # Shapes
/// - `x`: `[batch, in_channels, height, width]` → `[batch, out_channels, out_h, out_w]`
pub fn conv(layer: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match layer.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        // The zoo builds every convolution with explicit padding; anything else is burn's.
        _ => return layer.forward(x),
    };
    let options =
        ConvOptions::new_with_padding(layer.stride, padding, layer.dilation, layer.groups);
    kernels::conv2d(
        x,
        layer.weight.val(),
        layer.bias.as_ref().map(|bias| bias.val()),
        options,
    )
}

/// `bn(x)`: the layer's forward. In training (an autodiff device and the layer not frozen) the
/// batch statistics and normalisation come from [`crate::kernels::batch_norm_train`] and the
/// running estimates are updated exactly as burn's `BatchNorm::forward` updates them; otherwise
/// this is burn's forward. Every batch norm in the zoo runs through here, or through
/// `norm_relu_unfolded` where a ReLU follows it (the same, the ReLU fused in training).
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]` → the same
pub fn norm(layer: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    norm_then(layer, x, false)
}

/// `relu(norm(layer, x))`, the ReLU fused into a training-mode batch norm
/// ([`crate::kernels::batch_norm_relu_train`]) and applied after it otherwise.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]` → the same
fn norm_relu_unfolded(layer: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    norm_then(layer, x, true)
}

/// [`norm`], followed by a ReLU when `relu_after`.
fn norm_then(layer: &BatchNorm, x: Tensor<4>, relu_after: bool) -> Tensor<4> {
    if !(x.device().is_autodiff() && layer.training.is_enabled()) {
        let output = layer.forward(x);
        return if relu_after { relu(output) } else { output };
    }
    let train = if relu_after {
        kernels::batch_norm_relu_train
    } else {
        kernels::batch_norm_train
    };
    let (output, mean, variance) = train(x, layer.gamma.val(), layer.beta.val(), layer.epsilon);
    if !RUNNING_UPDATES.get() {
        return output;
    }
    let device = output.device();
    let momentum = layer.momentum;
    let running_mean = layer.running_mean.value_sync().to_device(&device);
    let running_var = layer.running_var.value_sync().to_device(&device);
    let running_mean = running_mean
        .mul_scalar(1.0 - momentum)
        .add(mean.mul_scalar(momentum));
    let running_var = running_var
        .mul_scalar(1.0 - momentum)
        .add(variance.mul_scalar(momentum));
    layer.running_mean.update(running_mean.detach());
    layer.running_var.update(running_var.detach());
    output
}

/// `bn(conv(x))`: a convolution followed by its batch norm, as every conv → bn pair of the zoo
/// computes it.
///
/// In inference (a device without autodiff, so the batch norm uses its running statistics) with
/// kd's kernels on, the normalisation is folded into the convolution, as inference engines do:
/// with `s = γ / √(running_var + ε)`, the weights become `W · s` (per output channel) and the
/// bias `β + (b − running_mean) · s`, where `b` is the convolution's own bias or 0. One
/// convolution then replaces a convolution and the four elementwise passes of burn's
/// inference batch norm (about a seventh of a MobileNetV2 forward, docs/results/bench.md). The
/// result equals `norm(bn, conv(x))` up to f32 rounding (`tests/kernels_zoo.rs` checks every
/// zoo architecture). Training, autodiff devices and `kernels::set_enabled(false)` take the
/// unfolded path.
///
/// # Shapes
/// - `x`: `[batch, in_channels, height, width]` → `[batch, out_channels, out_h, out_w]`
pub fn conv_norm(conv_layer: &Conv2d, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    match folded(conv_layer, bn, &x.device()) {
        Some((weight, bias, options)) => kernels::conv2d_bias(x, weight, bias, options, false),
        None => norm(bn, conv(conv_layer, x)),
    }
}

/// `relu(bn(conv(x)))`: [`conv_norm`] and a ReLU, which in inference with kd's kernels on is
/// applied to each image's output as the convolution finishes it instead of in a pass of its
/// own over the batch (`kernels::conv2d_bias`).
///
/// # Shapes
/// - `x`: `[batch, in_channels, height, width]` → `[batch, out_channels, out_h, out_w]`
pub fn conv_norm_relu(conv_layer: &Conv2d, bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    match folded(conv_layer, bn, &x.device()) {
        Some((weight, bias, options)) => kernels::conv2d_bias(x, weight, bias, options, true),
        None => norm_relu_unfolded(bn, conv(conv_layer, x)),
    }
}

/// `relu(bn(conv(x)) + residual)`: the end of a residual block. In inference with kd's kernels
/// on, the residual and the ReLU are applied per image as the convolution finishes it
/// (`kernels::conv2d_bias_add_relu`).
///
/// # Shapes
/// - `x`: `[batch, in_channels, height, width]`; `residual` and the output:
///   `[batch, out_channels, out_h, out_w]`
pub fn conv_norm_add_relu(
    conv_layer: &Conv2d,
    bn: &BatchNorm,
    x: Tensor<4>,
    residual: Tensor<4>,
) -> Tensor<4> {
    match folded(conv_layer, bn, &x.device()) {
        Some((weight, bias, options)) => {
            kernels::conv2d_bias_add_relu(x, weight, bias, residual, options)
        }
        None => relu(norm(bn, conv(conv_layer, x)) + residual),
    }
}

/// The folded weights, bias and options of a conv → bn pair (see [`conv_norm`]), or `None`
/// where the pair runs unfolded: on an autodiff device (training-mode batch norm), with kd's
/// kernels off, or with padding other than explicit.
fn folded(
    conv_layer: &Conv2d,
    bn: &BatchNorm,
    device: &Device,
) -> Option<(Tensor<4>, Tensor<1>, ConvOptions<2>)> {
    if device.is_autodiff() || !kernels::enabled() {
        return None;
    }
    let padding = match conv_layer.padding {
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        _ => return None,
    };
    let weight = conv_layer.weight.val();
    let [out_channels, ..] = weight.dims();
    let scale = running_scale(bn, device);
    let centre = match &conv_layer.bias {
        Some(bias) => bias.val() - bn.running_mean.value().to_device(device),
        None => bn.running_mean.value().to_device(device).neg(),
    };
    let bias = bn.beta.val().to_device(device) + centre * scale.clone();
    let weight = weight * scale.reshape([out_channels, 1, 1, 1]);
    let options = ConvOptions::new_with_padding(
        conv_layer.stride,
        padding,
        conv_layer.dilation,
        conv_layer.groups,
    );
    Some((weight, bias, options))
}

/// An inference batch norm's per-channel scale, `γ / √(running_var + ε)` (`[channels]`).
fn running_scale(bn: &BatchNorm, device: &Device) -> Tensor<1> {
    bn.gamma.val().to_device(device)
        / bn.running_var
            .value()
            .to_device(device)
            .add_scalar(bn.epsilon)
            .sqrt()
}

/// `relu(bn(x))`: a batch norm and its ReLU, as pre-activation blocks (WRN) apply them to their
/// input. In inference with kd's kernels on, the running statistics become a per-channel scale
/// `γ / √(running_var + ε)` and shift `β − running_mean · scale`, applied with the ReLU in one
/// pass (`kernels::scale_shift_relu`) instead of burn's five; equal to `relu(norm(bn, x))` up
/// to f32 rounding (`tests/conv_norm.rs` runs every architecture both ways).
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]`, unchanged
pub fn norm_relu(bn: &BatchNorm, x: Tensor<4>) -> Tensor<4> {
    let device = x.device();
    if device.is_autodiff() || !kernels::enabled() {
        return norm_relu_unfolded(bn, x);
    }
    let scale = running_scale(bn, &device);
    let shift = bn.beta.val().to_device(&device)
        - bn.running_mean.value().to_device(&device) * scale.clone();
    kernels::scale_shift_relu(x, scale, shift)
}

thread_local! {
    /// Whether [`norm`] in training mode moves the running statistics (see
    /// [`without_running_stat_updates`]).
    static RUNNING_UPDATES: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Runs `f` with every training-mode batch norm of this thread normalising with its batch's
/// statistics (and passing gradients as usual) while leaving its running statistics exactly as
/// they were: a forward whose activations should not count towards the estimates used at
/// evaluation. IAKD runs its hybrid networks this way, so neither the student's statistics nor
/// a swapped-in teacher stage's record activations that the pure student never produces.
/// Nested calls are allowed; the previous setting is restored on return, also on unwind.
pub fn without_running_stat_updates<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            RUNNING_UPDATES.set(self.0);
        }
    }
    let _restore = Restore(RUNNING_UPDATES.replace(false));
    f()
}

/// `nn.BatchNorm2d(channels)`: weight 1, bias 0, momentum 0.1, eps 1e-5 (PyTorch's defaults).
pub fn batch_norm(channels: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(channels).init(device)
}

/// `nn.Linear(input, output)` with the given initialisation.
pub fn linear(input: usize, output: usize, init: LinearInit, device: &Device) -> Linear {
    let torch_default = Initializer::KaimingUniform {
        gain: 1.0 / 3f64.sqrt(),
        fan_out_only: false,
    };
    let weight_init = match init {
        LinearInit::TorchDefault | LinearInit::TorchDefaultZeroBias => torch_default,
        LinearInit::Normal001ZeroBias => Initializer::Normal {
            mean: 0.0,
            std: 0.01,
        },
    };
    let mut layer = LinearConfig::new(input, output)
        .with_initializer(weight_init)
        .init(device);
    if init != LinearInit::TorchDefault {
        layer.bias = Some(Initializer::Zeros.init([output], device));
    }
    layer
}

/// One child of an `nn.Sequential`. Burn's stores skip enum variant names, so a `Vec<Layer>`
/// field named `features` yields the keys `features.0.weight`, `features.1.running_mean`, ...
/// exactly as PyTorch numbers them; parameter-free children (ReLU, pooling) keep their index.
#[derive(Module, Debug)]
pub enum Layer {
    /// `nn.Conv2d`.
    Conv(Conv2d),
    /// `nn.BatchNorm2d`.
    Norm(BatchNorm),
    /// `nn.ReLU`.
    Relu(burn::nn::Relu),
    /// `nn.MaxPool2d`.
    MaxPool(MaxPool2d),
    /// `nn.AvgPool2d`.
    AvgPool(AvgPool2d),
    /// `nn.Linear` (applied to a `[batch, features]` input flattened from the 4-D stream).
    Linear(Linear),
}

impl Layer {
    /// `nn.ReLU`.
    pub fn relu() -> Self {
        Layer::Relu(burn::nn::Relu::new())
    }

    /// `nn.MaxPool2d(kernel, stride=kernel)`.
    pub fn max_pool(kernel: usize) -> Self {
        Layer::MaxPool(MaxPool2dConfig::new([kernel, kernel]).init())
    }

    /// `nn.AvgPool2d(kernel, stride, padding)` with PyTorch's `count_include_pad=True`.
    pub fn avg_pool(kernel: usize, stride: usize, padding: usize) -> Self {
        Layer::AvgPool(
            AvgPool2dConfig::new([kernel, kernel])
                .with_strides([stride, stride])
                .with_padding(PaddingConfig2d::Explicit(
                    padding, padding, padding, padding,
                ))
                .with_count_include_pad(true)
                .init(),
        )
    }

    /// Applies the layer.
    ///
    /// # Shapes
    /// - `x`: `[batch, channels, height, width]`; a `Linear` child sees it flattened.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Layer::Conv(layer) => conv(layer, x),
            Layer::Norm(layer) => norm(layer, x),
            Layer::Relu(_) => relu(x),
            Layer::MaxPool(pool) => max_pool(pool, x),
            Layer::AvgPool(pool) => pool.forward(x),
            Layer::Linear(layer) => {
                let [batch, ..] = x.dims();
                let flat: Tensor<2> = x.reshape([batch as i32, -1]);
                let out = layer.forward(flat);
                let [_, features] = out.dims();
                out.reshape([batch, features, 1, 1])
            }
        }
    }
}

/// `nn.MaxPool2d`'s forward: through [`crate::kernels::max_pool2d`] when it has no padding or
/// dilation and floors its output size (every max pooling of the zoo), else burn's.
///
/// # Shapes
/// - `x`: `[batch, channels, height, width]` → `[batch, channels, out_h, out_w]`
pub fn max_pool(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let unpadded = match pool.padding {
        PaddingConfig2d::Valid => true,
        PaddingConfig2d::Explicit(top, left, bottom, right) => top + left + bottom + right == 0,
        _ => false,
    };
    if unpadded && pool.dilation == [1, 1] && !pool.ceil_mode {
        kernels::max_pool2d(x, pool.kernel_size, pool.stride)
    } else {
        pool.forward(x)
    }
}

/// Runs an `nn.Sequential` given as a slice of [`Layer`]s; a convolution followed by a batch
/// norm runs as one [`conv_norm`], and with a ReLU after them as one [`conv_norm_relu`].
pub fn sequential(layers: &[Layer], mut x: Tensor<4>) -> Tensor<4> {
    let mut rest = layers;
    while let Some((first, tail)) = rest.split_first() {
        match (first, tail) {
            (Layer::Conv(c), [Layer::Norm(bn), Layer::Relu(_), ..]) => {
                x = conv_norm_relu(c, bn, x);
                rest = &tail[2..];
            }
            (Layer::Conv(c), [Layer::Norm(bn), ..]) => {
                x = conv_norm(c, bn, x);
                rest = &tail[1..];
            }
            _ => {
                x = first.forward(x);
                rest = tail;
            }
        }
    }
    x
}

/// `[N,C,H,W] → [N,g,C/g,H,W] → [N,C/g,g,H,W] → [N,C,H,W]`: the ShuffleNet channel shuffle.
pub fn channel_shuffle(x: Tensor<4>, groups: usize) -> Tensor<4> {
    if groups == 1 {
        return x;
    }
    let [n, c, h, w] = x.dims();
    x.reshape([n, groups, c / groups, h, w])
        .swap_dims(1, 2)
        .reshape([n, c, h, w])
}

/// `channel_shuffle(cat([a, b], 1), 2)`, ShuffleNetV2's unit ending, as one copy: output channel
/// `2i` is `a`'s channel `i` and `2i + 1` is `b`'s. Stacking the two on a new axis after the
/// channels and merging it into them gives that order directly, where the concatenation and the
/// shuffle's transposition would each copy the whole activation.
///
/// # Shapes
/// - `a`, `b`: `[N, C, H, W]` → `[N, 2C, H, W]`
pub fn concat_shuffle(a: Tensor<4>, b: Tensor<4>) -> Tensor<4> {
    let [n, c, h, w] = a.dims();
    Tensor::stack::<5>(vec![a, b], 2).reshape([n, 2 * c, h, w])
}

/// Global average pooling of a `[N,C,H,W]` map to `[N,C]` (`avg_pool2d(x, H)` on a square map).
pub fn global_avg_pool(x: Tensor<4>) -> Tensor<2> {
    let [n, c, _, _] = x.dims();
    x.mean_dims(&[2, 3]).reshape([n, c])
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::Distribution;

    fn running_mean(layer: &BatchNorm) -> Vec<f32> {
        layer
            .running_mean
            .value_sync()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    /// The one-copy concatenation and shuffle equals the two steps, element for element.
    #[test]
    fn concat_shuffle_is_cat_then_channel_shuffle() {
        let device = Device::flex();
        let a = Tensor::<4>::random([2, 3, 4, 5], Distribution::Normal(0.0, 1.0), &device);
        let b = Tensor::<4>::random([2, 3, 4, 5], Distribution::Normal(0.0, 1.0), &device);
        let want = channel_shuffle(Tensor::cat(vec![a.clone(), b.clone()], 1), 2);
        let got = concat_shuffle(a, b);
        assert_eq!(got.dims(), [2, 6, 4, 5]);
        assert_eq!(
            got.into_data().try_into_vec::<f32>().unwrap(),
            want.into_data().try_into_vec::<f32>().unwrap()
        );
    }

    #[test]
    fn batch_statistics_without_moving_the_running_estimates() {
        let device = Device::flex().autodiff();
        let layer = batch_norm(3, &device);
        let x = Tensor::<4>::random([4, 3, 5, 5], Distribution::Normal(2.0, 1.0), &device);
        let quiet = without_running_stat_updates(|| norm(&layer, x.clone()));
        assert_eq!(running_mean(&layer), vec![0.0; 3], "estimates untouched");
        let counted = norm(&layer, x.clone());
        // The same normalisation either way (batch statistics, not the running ones).
        let (a, b) = (
            quiet.into_data().try_to_vec::<f32>().unwrap(),
            counted.into_data().try_to_vec::<f32>().unwrap(),
        );
        assert_eq!(a, b);
        // Outside the closure the estimates move by momentum × batch mean (about 0.1 × 2).
        let moved = running_mean(&layer);
        assert!(moved.iter().all(|m| (m - 0.2).abs() < 0.1), "{moved:?}");
        // The setting is restored, also after nesting.
        without_running_stat_updates(|| without_running_stat_updates(|| ()));
        let before = running_mean(&layer);
        let _ = norm(&layer, x);
        assert_ne!(running_mean(&layer), before);
    }
}
