//! A run's networks and methods, built from the plan: every role's network (loaded from its
//! checkpoint, frozen where it never trains) and every method's own modules initialised on them.
//! The trainer (`trainer.rs`) and `kd time` (`timing.rs`) both start here.

use burn::tensor::Device;

use super::checkpointing::load_role_weights;
use super::error::TrainError;
use super::plan::RunPlan;
use crate::import;
use crate::method::{InitContext, MAIN_PHASE, PlanView, RoleNet, Roles, Trainable};

/// Builds every role's network from the plan, loading checkpoints, freezing what never trains.
/// With `load_checkpoints = false`, a checkpoint that does not exist yet is skipped (timing a
/// run whose teacher another run will produce; the cost of a step does not depend on weights).
pub(super) fn build_roles(
    plan: &RunPlan,
    device: &Device,
    load_checkpoints: bool,
) -> Result<Roles, TrainError> {
    let mut roles = Roles::default();
    for r in &plan.roles {
        let network = r.network.arch.init(device);
        let phase = r
            .trained_in
            .clone()
            .unwrap_or_else(|| MAIN_PHASE.to_string());
        let mut net = Trainable::new(&r.network.role, &phase, network, r.lr, &plan.sgd);
        if let Some((path, inner)) = &r.checkpoint
            && (load_checkpoints || path.is_file())
        {
            load_role_weights(&mut net, path, inner)?;
        }
        roles.insert(RoleNet {
            name: r.network.role.clone(),
            arch_name: r.network.arch_name.clone(),
            spec: r.network.spec,
            trained_in: r.trained_in.clone(),
            bn: r.bn,
            ce_weight: r.ce_weight,
            net,
        });
    }
    Ok(roles)
}

/// Imports every PyTorch checkpoint the plan checked into `<run.output_dir>/imports/`, once
/// (a file already there is reused), recording the input preparation the role's
/// `networks.<role>.trained_on` declares, or none. Runs before the device is seeded, so
/// importing draws nothing from the run's random stream.
pub(super) fn import_checkpoints(plan: &RunPlan) -> Result<(), TrainError> {
    let device = Device::flex();
    for r in &plan.roles {
        if let (Some(source), Some((cached, _))) = (&r.imported_from, &r.checkpoint) {
            let n = &r.network;
            let preparation = r.imported_preparation.as_ref();
            import::import_cached_prepared(
                source,
                &n.arch_name,
                n.spec,
                cached,
                &device,
                preparation,
            )?;
        }
    }
    Ok(())
}

/// Lets every method build its own modules on the role networks.
pub(super) fn init_methods(
    plan: &mut RunPlan,
    roles: &Roles,
    device: &Device,
    num_classes: usize,
    in_channels: usize,
) -> Result<(), TrainError> {
    let view_networks = plan.networks.clone();
    let view_config = plan.config.clone();
    let view = PlanView {
        networks: &view_networks,
        input_size: plan.data.input_size,
        num_classes,
        in_channels,
        config: &view_config,
    };
    for m in plan.methods.iter_mut() {
        let mut ctx = InitContext {
            device,
            roles,
            sgd: plan.sgd,
            base_lr: plan.config.optim.lr,
            plan: view,
        };
        m.method
            .init(&mut ctx)
            .map_err(|source| TrainError::Method {
                instance: m.instance.clone(),
                source,
            })?;
    }
    Ok(())
}
