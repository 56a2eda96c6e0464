//! Expression-evaluation tests over in-memory batches.
