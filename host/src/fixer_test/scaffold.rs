//! `salve fixer new`: a fixer crate that builds for wasm32-wasip2 at once, with `check`, `plan`
//! and `apply` stubs that explain themselves, and one example case (recorded against moto) that
//! passes straight away.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::kinds::{self, KindSpec};

pub struct ScaffoldOptions {
    pub name: String,
    pub resource_type: String,
    pub control: String,
    /// Where the crate directory is created.
    pub parent: PathBuf,
    /// The salve-sdk crate to depend on.
    pub sdk: PathBuf,
}

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.ends_with('-');
    if !ok {
        bail!(
            "fixer name {name:?} must be 1-64 lower-case letters, digits and dashes, starting with a letter"
        );
    }
    Ok(())
}

/// Accepts a kind's CloudFormation type (`AWS::S3::Bucket`) or its interface name (`s3-bucket`).
pub fn resource_type(given: &str) -> Result<&'static KindSpec> {
    kinds::specs()
        .find(|k| k.name == given || k.interface == given)
        .with_context(|| {
            format!(
                "unknown resource type {given:?}; salve has capabilities for {}",
                kinds::specs()
                    .map(|k| format!("{} ({})", k.name, k.interface))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

fn struct_name(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// Writes the crate and returns its directory. Refuses to write over an existing directory.
pub fn scaffold(options: &ScaffoldOptions) -> Result<PathBuf> {
    check_name(&options.name)?;
    let kind = resource_type(&options.resource_type)?;
    let scaffold = &kind.scaffold;
    let dir = options.parent.join(&options.name);
    if dir.exists() {
        bail!("{} already exists", dir.display());
    }
    let sdk = options
        .sdk
        .canonicalize()
        .with_context(|| format!("the salve-sdk crate at {}", options.sdk.display()))?;
    if !sdk.join("Cargo.toml").exists() {
        bail!(
            "{} is not the salve-sdk crate (no Cargo.toml)",
            sdk.display()
        );
    }
    let case_dir = dir.join("cases").join("not-implemented");
    std::fs::create_dir_all(dir.join("src"))
        .with_context(|| format!("creating {}", dir.display()))?;
    std::fs::create_dir_all(&case_dir)
        .with_context(|| format!("creating {}", case_dir.display()))?;
    let write = |path: PathBuf, text: String| -> Result<()> {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
    };
    write(
        dir.join("Cargo.toml"),
        cargo_toml(&options.name, &sdk, kind.interface),
    )?;
    write(
        dir.join("src/lib.rs"),
        lib_rs(&options.name, kind, &options.control),
    )?;
    write(dir.join(".gitignore"), "/target\n".into())?;
    write(
        case_dir.join("case.json"),
        case_json(
            kind.name,
            scaffold.example_arn,
            &options.control,
            scaffold.recorded_at,
        ),
    )?;
    write(case_dir.join("traffic.json"), scaffold.traffic.to_string())?;
    Ok(dir)
}

fn toml_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

fn cargo_toml(name: &str, sdk: &Path, feature: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2021"
publish = false

# A fixer is a WebAssembly component: build with
#   cargo build --release --target wasm32-wasip2
# and test with
#   salve fixer test .
[lib]
crate-type = ["cdylib"]

[dependencies]
salve-sdk = {{ path = {}, features = ["{feature}"] }}

# Its own workspace, so it builds wherever it is put.
[workspace]
"#,
        toml_string(&sdk.display().to_string())
    )
}

fn lib_rs(name: &str, kind: &KindSpec, control: &str) -> String {
    let ty = struct_name(name);
    let (resource_type, module) = (kind.name, kind.scaffold.module);
    // An IaC-only kind's fixer checks and edits Terraform; nothing else exists to write.
    let (steps, imports, methods, register) = match kind.iac_only {
        Some(why) => (
            format!("in two steps: `check`, then `terraform`, whose edit the host opens as a pull\n//! request (nothing live can fix this kind: {why})"),
            "Edit, Fixer, FixerError, LocatedBlock, Result",
            r#"

    /// The fix as edits of the located Terraform blocks (`blocks[0]` declares the resource),
    /// each written as `terraform fmt` writes it. The host checks every edit and opens it as a
    /// pull request.
    fn terraform(_blocks: Vec<LocatedBlock>) -> Result<Option<Vec<Edit>>> {
        Err(not_implemented("terraform"))
    }"#,
            "iac_only_kind",
        ),
        None => (
            "in four steps: `check`, `plan`, `apply`, then `check` again".to_string(),
            "Call, Fixer, FixerError, Outcome, Plan, Result",
            r#"

    /// Read only: which calls would make it compliant? Add each write with
    /// `Plan::call(Call::…, description)`: the exact call `apply` will make, with its arguments.
    /// The host decides on the plan, lets `apply` make exactly these calls, and then reads the
    /// resource back to see that each took effect.
    fn plan() -> Result<Plan> {
        Err(not_implemented("plan"))
    }

    /// Make the approved plan's calls, and nothing else: any other write, or the same write with
    /// other arguments, is refused. Return rollback data (`Outcome::with_rollback`) where the
    /// change can be reversed.
    fn apply(_plan: Plan) -> Result<Outcome> {
        Err(not_implemented("apply"))
    }"#,
            "kind",
        ),
    };
    format!(
        r#"//! {name}: remediates {control} on {resource_type}.
//!
//! The host runs this component in a sandbox, against exactly the resource named in the finding,
//! {steps}. It can reach the resource only
//! through `salve_sdk::{module}`, and only with the IAM actions of the functions it calls.

#[allow(unused_imports)]
use salve_sdk::{module}::{{self, {imports}}};

/// A stub must never produce evidence: until each function is written it fails, so an installed
/// scaffold records `failed` ("not implemented"), never `already-compliant`.
fn not_implemented(function: &str) -> FixerError {{
    FixerError::unexpected_state(format!("not implemented: {{function}}() is still the scaffold's stub"))
}}

pub struct {ty};

impl Fixer for {ty} {{
    /// Read only: is the resource already compliant? Read it through `{module}::…` and compare.
    /// The host calls this first (`true` ends the run as already compliant, nothing planned)
    /// and again after `apply` (the finding counts as remediated only if it then says `true`).
    fn check() -> Result<bool> {{
        // TODO: read the resource and decide.
        Err(not_implemented("check"))
    }}{methods}
}}

salve_sdk::register_fixer!(
    {ty},
    {register}: {module},
    // The Security Hub control IDs and Wiz rule IDs this fixer remediates; findings are routed
    // to it by these.
    controls: ["{control}"],
);
"#
    )
}

fn case_json(resource_type: &str, arn: &str, control: &str, recorded_at: &str) -> String {
    let case = serde_json::json!({
        "description": "The stub is not implemented: check() fails, so the finding ends as failed and nothing is recorded as compliant. Write the fixer, then record real cases with `salve fixer test --record --endpoint-url <url> .`",
        "recorded_at": recorded_at,
        "endpoint_url": "http://127.0.0.1:5000",
        "finding": {
            "id": "example-finding",
            "source": "example",
            "control_id": control,
            "title": "an example finding",
            "severity": "HIGH",
            "resource": {
                "arn": arn,
                "type": resource_type,
                "account_id": "123456789012",
                "region": "us-east-1",
                "tags": {"owner": "platform-team", "environment": "dev"}
            }
        },
        "expect": {
            "status": "failed",
            "decision": "remediate",
            "calls": []
        }
    });
    serde_json::to_string_pretty(&case).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_types() {
        assert!(check_name("s3-deny-http").is_ok());
        assert_eq!(
            check_name("S3_Fixer").unwrap_err().to_string(),
            "fixer name \"S3_Fixer\" must be 1-64 lower-case letters, digits and dashes, starting with a letter"
        );
        assert_eq!(struct_name("s3-deny-http"), "S3DenyHttp");
        assert_eq!(resource_type("s3-bucket").unwrap().name, "AWS::S3::Bucket");
        assert_eq!(
            resource_type("AWS::EC2::SecurityGroup")
                .unwrap()
                .scaffold
                .module,
            "security_group"
        );
        assert!(resource_type("AWS::IAM::Role")
            .unwrap_err()
            .to_string()
            .starts_with("unknown resource type \"AWS::IAM::Role\""));
    }
}
