//! The built-in workflows, compiled into the binary. All are read-only.
pub const BUILTINS: [(&str, &str); 5] = [
    ("deep-research", include_str!("catalog/deep-research.js")),
    ("multi-review", include_str!("catalog/multi-review.js")),
    ("find-issues", include_str!("catalog/find-issues.js")),
    ("plan-verify", include_str!("catalog/plan-verify.js")),
    ("bounty-hunt", include_str!("catalog/bounty-hunt.js")),
];
