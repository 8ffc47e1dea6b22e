//! The closest known name to an unknown one, for the "did you mean" of every message that
//! refuses a name: configuration keys (`extract.rs`, `MethodArgs`), enum values such as
//! `data.preset` or `networks.<role>.trained_on`, method kinds (`method/registry.rs`) and zoo
//! architectures (`networks.<role>.arch`, `optim.lr_for_arch.<arch>`). One rule for all of them,
//! so that a name suggested in one place is suggested everywhere.
//!
//! The rule, first that applies, comparing without regard to case:
//! 1. the same name in another case (`mobilenetv2` → `MobileNetV2`);
//! 2. for a name of at least [`MIN_PART`] characters, a known name that starts with it or that
//!    it starts with, else one that contains it (`mobilenet` → `MobileNetV2`, `cifar` →
//!    `cifar10`): the one closest in length, then the first listed;
//! 3. the known name at the smallest edit distance (Levenshtein), if that distance is at most a
//!    quarter of the name's length plus one, and at most 3 (a typo such as `momentun` →
//!    `momentum`, not an unrelated word).

/// The shortest unknown name matched as a prefix or a substring of a known one (shorter names
/// match too many: `a` is in most words).
pub const MIN_PART: usize = 3;

/// The known name closest to `found` (see the module's rule), if one is close.
pub fn closest<'a>(found: &str, known: &[&'a str]) -> Option<&'a str> {
    let lower = found.to_lowercase();
    let lowered: Vec<(String, &'a str)> = known.iter().map(|k| (k.to_lowercase(), *k)).collect();
    if let Some((_, k)) = lowered.iter().find(|(l, _)| *l == lower) {
        return Some(k);
    }
    let length = |s: &str| s.chars().count();
    let found_len = length(&lower);
    if found_len >= MIN_PART {
        let by_length = |matches: &dyn Fn(&str) -> bool| {
            lowered
                .iter()
                .filter(|(l, _)| matches(l))
                .min_by_key(|(l, _)| length(l).abs_diff(found_len))
                .map(|(_, k)| *k)
        };
        let prefix = by_length(&|l| l.starts_with(&lower) || lower.starts_with(l));
        if let Some(k) = prefix.or_else(|| by_length(&|l| l.contains(&lower))) {
            return Some(k);
        }
    }
    let limit = (found_len / 4 + 1).min(3);
    lowered
        .iter()
        .map(|(l, k)| (strsim::levenshtein(l, &lower), *k))
        .min_by_key(|(distance, _)| *distance)
        .filter(|(distance, _)| *distance <= limit)
        .map(|(_, k)| k)
}

/// ` (did you mean `<name>`?)` for the closest known name, or nothing: the words every message
/// that refuses a name appends to it.
pub fn did_you_mean(found: &str, known: &[&str]) -> String {
    closest(found, known)
        .map(|k| format!(" (did you mean `{k}`?)"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ZOO: &[&str] = &[
        "resnet8",
        "resnet20",
        "resnet32x4",
        "MobileNetV2",
        "ShuffleV1",
        "ShuffleV2",
        "wrn_40_2",
        "vgg8",
    ];

    #[test]
    fn case_then_prefix_then_substring_then_a_typo() {
        assert_eq!(closest("mobilenetv2", ZOO), Some("MobileNetV2"));
        assert_eq!(closest("mobilenet", ZOO), Some("MobileNetV2"));
        assert_eq!(closest("MOBILENET", ZOO), Some("MobileNetV2"));
        // A known name that the unknown one extends.
        assert_eq!(closest("vgg8_bn", ZOO), Some("vgg8"));
        // Several prefixes: the closest in length, then the first listed.
        assert_eq!(closest("resnet", ZOO), Some("resnet8"));
        assert_eq!(closest("shuffle", ZOO), Some("ShuffleV1"));
        assert_eq!(
            closest("cifar", &["mnist", "cifar10", "cifar100"]),
            Some("cifar10")
        );
        // Contained, not a prefix.
        assert_eq!(closest("40_2", ZOO), Some("wrn_40_2"));
        // Typos.
        assert_eq!(closest("MobileNetV3", ZOO), Some("MobileNetV2"));
        assert_eq!(closest("momentun", &["lr", "momentum"]), Some("momentum"));
        assert_eq!(closest("twn", &["twin"]), Some("twin"));
    }

    #[test]
    fn nothing_close_suggests_nothing() {
        assert_eq!(closest("transformer", ZOO), None);
        // Too short for a part, too far for a typo.
        assert_eq!(closest("xy", ZOO), None);
        assert_eq!(closest("abc", &[]), None);
        assert_eq!(did_you_mean("transformer", ZOO), "");
        assert_eq!(
            did_you_mean("mobilenet", ZOO),
            " (did you mean `MobileNetV2`?)"
        );
    }
}
