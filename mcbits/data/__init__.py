"""The data layer: external artifacts and the data sets made from them.

`registry` declares every external file with its checksums and sources, `checksums` verifies
files, `download` is the HTTP transfer (retry, resume), `fetch` tries the sources in order and
places verified copies, `checkpoints` fetches upstream's published models, `idx` reads and writes
the idx format, and `datasets` turns verified idx files into binarized, stored test and train sets.
"""
