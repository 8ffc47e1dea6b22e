//! The shape every zoo network shares: a stem, an ordered list of stages, and a head.
//!
//! Owns the [`Staged`] trait that each architecture implements and the [`Features`] a full
//! forward returns (every stage output by name, the pooled feature, the logits). Distillation
//! methods call the pieces directly: IAKD runs a teacher stage on a student's activation, SOKD
//! grows a branch from a teacher's penultimate stage, FFKD regresses stage outputs onto each
//! other. The runtime calls [`Staged::forward_features`] once per network per step.

use burn::tensor::Tensor;

/// A network seen as stem → stages → head.
///
/// Tap names are fixed across the zoo: `stem`, `stage1` … `stageN` (the outputs of the reference
/// model's `is_feat=True` list, `f0 … f(N)`), `pooled` (the flattened feature fed to the
/// classifier) and `logits`.
pub trait Staged {
    /// Number of stages (3 for the CIFAR ResNets, WRNs and ShuffleNets, 4 for the rest).
    fn num_stages(&self) -> usize;

    /// The stem: everything before the first stage.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, 32, 32]` → `[batch, C0, H0, W0]`
    fn stem(&self, x: Tensor<4>) -> Tensor<4>;

    /// Stage `index` (0-based) applied to the output of stage `index - 1` (or of the stem).
    /// Any tensor of the right shape will do, including another network's.
    ///
    /// # Shapes
    /// - `x`: the shape of the previous tap → the shape of tap `stage{index+1}`
    fn stage(&self, index: usize, x: Tensor<4>) -> Tensor<4>;

    /// Drops the layers of stages `0 .. index`, keeping the stem, the later stages and the head:
    /// what remains is a "tail" that runs from stage `index` on (SOKD's branch). A dropped stage
    /// must not be run again.
    fn clear_stages_before(&mut self, index: usize);

    /// Everything between the last stage and the classifier (final BN-ReLU or 1x1 conv where the
    /// architecture has one, then global average pooling).
    ///
    /// # Shapes
    /// - `x`: last stage output `[batch, C, H, W]` → `[batch, D]`
    fn pool(&self, x: Tensor<4>) -> Tensor<2>;

    /// The classifier.
    ///
    /// # Shapes
    /// - `pooled`: `[batch, D]` → `[batch, num_classes]`
    fn classify(&self, pooled: Tensor<2>) -> Tensor<2>;

    /// The logits alone.
    ///
    /// # Shapes
    /// - `x`: `[batch, in_channels, 32, 32]` → `[batch, num_classes]`
    fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = self.stem(x);
        for index in 0..self.num_stages() {
            x = self.stage(index, x);
        }
        self.classify(self.pool(x))
    }

    /// Every tap of one forward pass.
    fn forward_features(&self, x: Tensor<4>) -> Features
    where
        Self: Sized,
    {
        self.forward_features_split(self, 0, x)
    }

    /// Every tap of one forward pass whose stem and stages `0 .. first` are `early`'s and whose
    /// later stages and head are `self`'s. With `early` a `no_grad()` clone of `self` (same
    /// weights, shared BatchNorm statistics), the values are those of
    /// [`Staged::forward_features`] but only stages `first ..` and the head join the autodiff
    /// graph: FFKD's feedback trains a teacher's deep stages this way. (Detaching the input of
    /// stage `first` instead would leave the earlier part's graph alive with nothing ever
    /// consuming it.)
    fn forward_features_split(&self, early: &Self, first: usize, x: Tensor<4>) -> Features
    where
        Self: Sized,
    {
        let stem = if first > 0 {
            early.stem(x)
        } else {
            self.stem(x)
        };
        let mut stages = Vec::with_capacity(self.num_stages());
        let mut x = stem.clone();
        for index in 0..self.num_stages() {
            x = if index < first {
                early.stage(index, x)
            } else {
                self.stage(index, x)
            };
            stages.push(x.clone());
        }
        let pooled = self.pool(x);
        let logits = self.classify(pooled.clone());
        Features {
            stem,
            stages,
            pooled,
            logits,
        }
    }
}

/// The named intermediate results of one forward pass.
#[derive(Debug, Clone)]
pub struct Features {
    /// Output of the stem (`f0` in the reference code).
    pub stem: Tensor<4>,
    /// Output of each stage in order (`f1 … fN`).
    pub stages: Vec<Tensor<4>>,
    /// The pooled, flattened feature fed to the classifier.
    pub pooled: Tensor<2>,
    /// Class scores.
    pub logits: Tensor<2>,
}

impl Features {
    /// The output of the last stage.
    pub fn last_stage(&self) -> &Tensor<4> {
        self.stages
            .last()
            .expect("every zoo network has at least one stage")
    }
}

/// Name of the tap that holds stage `index` (0-based): `stage1`, `stage2`, ...
pub fn stage_tap(index: usize) -> String {
    format!("stage{}", index + 1)
}
