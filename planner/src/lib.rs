//! KQL binder and lowering to DataFusion.
