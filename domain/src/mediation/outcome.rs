//! How a mediation ends (ODR-Med 21, 25).

use serde::{Deserialize, Serialize};

/// The grounds on which an online mediation ends (ODR-Med art 25, items 1–8), numbered as in
/// the rule. The labels paraphrase the rule's items; the number is what is stored.
pub const TERMINATION_GROUNDS: [(u8, &str); 8] = [
    (1, "当事人达成调解协议"),
    (2, "当事人自行和解，撤回调解申请"),
    (3, "当事人明确拒绝调解"),
    (4, "当事人无正当理由未参加调解或中途退出"),
    (5, "当事人分歧较大，难以达成调解协议"),
    (6, "调解期限届满未达成协议，且未同意延长"),
    (7, "当事人拒绝在调解协议上签章"),
    (8, "其他导致调解无法进行的情形"),
];

/// The ground a refusal to sign ends the mediation on.
pub const REFUSED_TO_SIGN: u8 = 7;

/// The result of a mediation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Outcome {
    /// An agreement took effect; the parties may apply for judicial confirmation within 30 days.
    Success,
    /// No agreement: the case is referred for filing (转立案) with the mediator's reasons.
    Failure {
        /// Why mediation failed (the mediator's record).
        reason: String,
    },
    /// Ended on one of [`TERMINATION_GROUNDS`].
    Termination {
        /// The item of ODR-Med art 25.
        ground: u8,
        /// What happened.
        #[serde(default)]
        note: String,
    },
}

impl Outcome {
    /// A one-line description for the audit log and documents.
    pub fn describe(&self) -> String {
        match self {
            Outcome::Success => "调解成功".into(),
            Outcome::Failure { .. } => "调解不成，转立案".into(),
            Outcome::Termination { ground, .. } => {
                let label = TERMINATION_GROUNDS
                    .iter()
                    .find(|(g, _)| g == ground)
                    .map_or("", |(_, l)| *l);
                format!("调解终结（第二十五条第{ground}项：{label}）")
            }
        }
    }
}
