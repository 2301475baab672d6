//! The terraform provider stand-in's test-bed side: installing it where `terraform init`
//! finds it as hashicorp/azurerm and hashicorp/aws. The provider itself is the
//! `windlass-provider-standin` binary (src/main.rs).

pub mod mirror;
