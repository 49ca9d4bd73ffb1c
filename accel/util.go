package accel

import "sync"

// copyBufs holds the buffers bodies are streamed through.
var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}
