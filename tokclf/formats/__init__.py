"""Every data format tokclf reads and writes: one module per format (tokclf.formats.conll, .rows, ...),
each defining FORMAT, listed once in tokclf.formats.registry. Nothing is imported here, so that a
format module can be imported without the registry (and the registry imports every format)."""
