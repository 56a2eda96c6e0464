//! [`VisitorMut`]: the walk of [`visit`](super::visit) by mutable reference, for rewrites in
//! place. The methods and `walk_*` functions have the same names and reach the same nodes;
//! both are generated from one definition, so they cannot drift apart.

use super::*;

super::visit::visitor! {
    /// A walk over the AST by mutable reference. See the [`visit`](super::visit) module.
    pub trait VisitorMut;
    ref = [&mut];
}
