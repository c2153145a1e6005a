//! The OpenAPI 3.1 description of the public HTTP interface, served at `/api/v1/openapi.json`. Kept as a
//! document rather than generated, so it is reviewed like the interface it describes; a test checks that
//! every route the router serves is listed here.

pub const DOCUMENT: &str = include_str!("../../docs/openapi.json");
