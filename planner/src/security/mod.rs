//! Everything that keeps a row-level-security policy's hidden rows hidden once a query is bound:
//! the barrier around each policy's plan (a logical node and a physical exec), the one
//! exception to "nothing moves below a barrier" (total predicates, [`pushdown`]), and the
//! verifier that checks every plan before it runs ([`verify`]). Nothing here imports the rest
//! of the planner's pipeline; the pipeline imports this.

pub mod barrier;
pub mod protected;
pub mod provenance;
pub mod pushdown;
pub mod verify;
