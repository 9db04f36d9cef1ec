"""Where a face's crop lies in its frame: the canonical template and fits (`align`), warps between them (`resample`)."""
