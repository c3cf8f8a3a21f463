/* The export's hot loop in C: privatevault.evidence.lines' pure-Python ``plan_py`` and
 * ``render_py``, the same functions, compiled. Keep the two in step: tests/unit/test_evidence_lines.py
 * runs both on the same batches (malformed ones included) and requires identical results.
 *
 * plan(data, size) -> [(level, lo, hi), ...]
 *     The runs of stored Merkle nodes holding every sibling below its block of the batch's leaves,
 *     by level, then index; leaves within GAP of each other in one block share runs.
 * render(data, size, runs, nodes, uppers) -> (records, proofs, count)
 *     The batch's records.jsonl and proofs.jsonl bytes: ``nodes`` is the read of ``runs``
 *     (32 bytes a node, in the runs' order), ``uppers`` maps a block's level to the JSON items of
 *     the path above that block.
 *
 * ``data`` is a batch of records as rows of PostgreSQL's binary COPY format (seq, canonical,
 * prev_hash, record_hash), as the ledger's COPY reader hands them over. A proof line is
 * layout.ProofLine.to_bytes' bytes. The GIL is released while a batch is rendered, so the reading
 * threads fetch the next batches meanwhile.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HASH 32
#define B64 44
#define LEVELS 64
#define GAP 32

/* Big-endian integers of the COPY format, read with one load (and a swap on little-endian CPUs). */
static uint32_t be32(const unsigned char *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap32(v);
#endif
    return v;
}

static uint64_t be64(const unsigned char *p) { return (uint64_t)be32(p) << 32 | be32(p + 4); }

typedef struct {
    int64_t seq;
    const unsigned char *body;
    Py_ssize_t body_len;
    const unsigned char *prev;
    const unsigned char *digest;
} row_t;

/* The next row at *cursor, or 0 when it is cut short or not (seq, canonical, 32-byte hash, 32-byte hash). */
static int next_row(const unsigned char **cursor, const unsigned char *end, row_t *row) {
    const unsigned char *p = *cursor;
    if (end - p < 2 + 4 + 8 + 4 || p[0] != 0 || p[1] != 4 || be32(p + 2) != 8) return 0;
    row->seq = (int64_t)be64(p + 6);
    int32_t len = (int32_t)be32(p + 14);
    p += 18;
    if (len < 0 || end - p < (Py_ssize_t)len + 2 * (4 + HASH)) return 0;
    row->body = p, row->body_len = len;
    p += len;
    if (be32(p) != HASH || be32(p + 4 + HASH) != HASH) return 0;
    row->prev = p + 4, row->digest = p + 8 + HASH;
    *cursor = p + 2 * (4 + HASH);
    return 1;
}

static int block_level(uint64_t leaf, uint64_t size) { return 63 - __builtin_clzll(leaf ^ size); }

/* Checks every row and the leaf's place in the tree; -1 with a ValueError set (the GIL held). */
static Py_ssize_t check_rows(const unsigned char *data, Py_ssize_t length, int64_t size) {
    const unsigned char *cursor = data, *end = data + length;
    row_t row;
    Py_ssize_t count = 0;
    int64_t last = 0;
    while (cursor < end) {
        if (!next_row(&cursor, end, &row)) {
            if (count)
                PyErr_Format(PyExc_ValueError, "the row after %lld is malformed", (long long)last);
            else
                PyErr_SetString(PyExc_ValueError, "the row after the start is malformed");
            return -1;
        }
        if (row.seq < 1 || row.seq > size) {
            PyErr_Format(PyExc_ValueError, "record %lld is not in the tree of size %lld", (long long)row.seq,
                         (long long)size);
            return -1;
        }
        last = row.seq;
        count++;
    }
    return count;
}

typedef struct {
    int64_t lo, hi;
} run_t;

typedef struct {
    run_t *items;
    Py_ssize_t n, cap;
} runs_t;

static int push_run(runs_t *runs, int64_t lo, int64_t hi) {
    if (runs->n && lo - runs->items[runs->n - 1].hi <= GAP) {
        if (hi > runs->items[runs->n - 1].hi) runs->items[runs->n - 1].hi = hi;
        return 1;
    }
    if (runs->n == runs->cap) {
        Py_ssize_t cap = runs->cap ? 2 * runs->cap : 16;
        run_t *items = realloc(runs->items, (size_t)cap * sizeof(run_t));
        if (!items) return 0;
        runs->items = items, runs->cap = cap;
    }
    runs->items[runs->n++] = (run_t){lo, hi};
    return 1;
}

static int add_span(runs_t *levels, int64_t first, int64_t last, int top) {
    for (int level = 0; level < top; level++)
        if (!push_run(&levels[level], (first >> level) & ~(int64_t)1, ((last >> level) | 1) + 1)) return 0;
    return 1;
}

static PyObject *plan(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer buffer;
    long long size;
    if (!PyArg_ParseTuple(args, "y*L", &buffer, &size)) return NULL;
    PyObject *result = NULL;
    runs_t levels[LEVELS] = {{0}};
    if (check_rows(buffer.buf, buffer.len, size) < 0) goto done;
    const unsigned char *cursor = buffer.buf, *end = cursor + buffer.len;
    row_t row;
    int have = 0, top = 0, ok = 1;
    int64_t first = 0, last = 0;
    while (ok && cursor < end && next_row(&cursor, end, &row)) {
        int64_t leaf = row.seq - 1;
        int level = block_level((uint64_t)leaf, (uint64_t)size);
        if (have && leaf - last <= GAP && level == top) {
            last = leaf;
            continue;
        }
        if (have) ok = add_span(levels, first, last, top);
        have = 1, first = last = leaf, top = level;
    }
    if (ok && have) ok = add_span(levels, first, last, top);
    if (!ok) {
        PyErr_NoMemory();
        goto done;
    }
    result = PyList_New(0);
    for (int level = 0; result && level < LEVELS; level++)
        for (Py_ssize_t i = 0; i < levels[level].n; i++) {
            PyObject *item = Py_BuildValue("(iLL)", level, (long long)levels[level].items[i].lo,
                                           (long long)levels[level].items[i].hi);
            if (!item || PyList_Append(result, item) < 0) {
                Py_XDECREF(item);
                Py_CLEAR(result);
                break;
            }
            Py_DECREF(item);
        }
done:
    for (int level = 0; level < LEVELS; level++) free(levels[level].items);
    PyBuffer_Release(&buffer);
    return result;
}

typedef struct {
    char *data;
    size_t n, cap;
} out_t;

static int reserve(out_t *out, size_t more) {
    if (out->n + more <= out->cap) return 1;
    size_t cap = out->cap ? out->cap : 1 << 16;
    while (cap < out->n + more) cap *= 2;
    char *data = realloc(out->data, cap);
    if (!data) return 0;
    out->data = data, out->cap = cap;
    return 1;
}

static void put(out_t *out, const void *data, size_t n) {
    memcpy(out->data + out->n, data, n);
    out->n += n;
}

static const char ALPHABET[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static void base64(const unsigned char *in, char *out) { /* 32 bytes -> 44 characters */
    for (int i = 0; i < 30; i += 3, out += 4) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[0] = ALPHABET[v >> 18 & 63], out[1] = ALPHABET[v >> 12 & 63];
        out[2] = ALPHABET[v >> 6 & 63], out[3] = ALPHABET[v & 63];
    }
    uint32_t v = (uint32_t)in[30] << 16 | (uint32_t)in[31] << 8;
    out[0] = ALPHABET[v >> 18 & 63], out[1] = ALPHABET[v >> 12 & 63], out[2] = ALPHABET[v >> 6 & 63], out[3] = '=';
}

typedef struct {
    int64_t lo, hi;
    const unsigned char *hashes; /* the node (level, lo) */
} stored_t;

typedef struct {
    stored_t *runs[LEVELS];
    Py_ssize_t n[LEVELS];
    const char *upper[LEVELS];
    Py_ssize_t upper_len[LEVELS];
} tree_t;

static const unsigned char *find(const tree_t *tree, int level, int64_t index) {
    const stored_t *runs = tree->runs[level];
    Py_ssize_t lo = 0, hi = tree->n[level];
    while (lo < hi) { /* the first run with hi > index */
        Py_ssize_t mid = (lo + hi) / 2;
        if (runs[mid].hi <= index)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == tree->n[level] || runs[lo].lo > index) return NULL;
    return runs[lo].hashes + HASH * (index - runs[lo].lo);
}

/* The lines of every row; 0: out of memory, -1: a node not in the runs (at *missing). */
static int render_rows(const unsigned char *data, Py_ssize_t length, int64_t size, const tree_t *tree,
                       out_t *records, out_t *proofs, int64_t missing[2]) {
    const unsigned char *cursor = data, *end = data + length;
    row_t row;
    int64_t cached[LEVELS]; /* the sibling whose base64 is in text[level], -1: none */
    char text[LEVELS][B64];
    for (int level = 0; level < LEVELS; level++) cached[level] = -1;
    while (cursor < end && next_row(&cursor, end, &row)) {
        int64_t leaf = row.seq - 1;
        int top = block_level((uint64_t)leaf, (uint64_t)size);
        size_t need = (size_t)top * (B64 + 3) + (size_t)tree->upper_len[top] + 2 * B64 + 96;
        if (!reserve(records, (size_t)row.body_len + 1) || !reserve(proofs, need)) return 0;
        put(records, row.body, (size_t)row.body_len);
        put(records, "\n", 1);
        char hash[B64];
        put(proofs, "{\"prevHash\":\"", 13);
        base64(row.prev, hash);
        put(proofs, hash, B64);
        put(proofs, "\",\"proof\":[", 11);
        for (int level = 0; level < top; level++) {
            int64_t sibling = (leaf >> level) ^ 1;
            if (cached[level] != sibling) {
                const unsigned char *node = find(tree, level, sibling);
                if (!node) {
                    missing[0] = level, missing[1] = sibling;
                    return -1;
                }
                base64(node, text[level]);
                cached[level] = sibling;
            }
            if (level) put(proofs, ",", 1);
            put(proofs, "\"", 1);
            put(proofs, text[level], B64);
            put(proofs, "\"", 1);
        }
        if (tree->upper_len[top]) {
            if (top) put(proofs, ",", 1);
            put(proofs, tree->upper[top], (size_t)tree->upper_len[top]);
        }
        put(proofs, "],\"recordHash\":\"", 16);
        base64(row.digest, hash);
        put(proofs, hash, B64);
        proofs->n += (size_t)snprintf(proofs->data + proofs->n, 32, "\",\"seq\":%lld}\n", (long long)row.seq);
    }
    return 1;
}

/* Fills ``tree`` from the runs, their nodes and the uppers; 0 with an exception set. */
static int load_tree(tree_t *tree, PyObject *runs, const Py_buffer *nodes, PyObject *uppers, PyObject **keep) {
    PyObject *seq = PySequence_Fast(runs, "runs must be a sequence of (level, lo, hi)");
    if (!seq) return 0;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq), offset = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        int level;
        long long lo, hi;
        if (!PyArg_ParseTuple(PySequence_Fast_GET_ITEM(seq, i), "iLL", &level, &lo, &hi)) goto fail;
        if (level < 0 || level >= LEVELS || hi < lo) {
            PyErr_SetString(PyExc_ValueError, "a run is not (level, lo, hi) with lo <= hi");
            goto fail;
        }
        if (tree->n[level] && tree->runs[level][tree->n[level] - 1].hi > lo) {
            PyErr_SetString(PyExc_ValueError, "the runs of a level are not in order");
            goto fail;
        }
        stored_t *grown = realloc(tree->runs[level], (size_t)(tree->n[level] + 1) * sizeof(stored_t));
        if (!grown) {
            PyErr_NoMemory();
            goto fail;
        }
        tree->runs[level] = grown;
        grown[tree->n[level]++] = (stored_t){lo, hi, (const unsigned char *)nodes->buf + offset};
        offset += HASH * (Py_ssize_t)(hi - lo);
    }
    Py_DECREF(seq);
    if (offset != nodes->len) {
        PyErr_Format(PyExc_ValueError, "%zd bytes of nodes for runs of %zd nodes", nodes->len, offset / HASH);
        return 0;
    }
    PyObject *key, *value;
    Py_ssize_t at = 0;
    if (!PyDict_Check(uppers)) {
        PyErr_SetString(PyExc_TypeError, "uppers must be a dict of level to bytes");
        return 0;
    }
    while (PyDict_Next(uppers, &at, &key, &value)) {
        long level = PyLong_AsLong(key);
        if (level == -1 && PyErr_Occurred()) return 0;
        if (level < 0 || level >= LEVELS || !PyBytes_Check(value)) {
            PyErr_SetString(PyExc_ValueError, "uppers must map levels 0..63 to bytes");
            return 0;
        }
        tree->upper[level] = PyBytes_AS_STRING(value), tree->upper_len[level] = PyBytes_GET_SIZE(value);
    }
    Py_INCREF(uppers);
    *keep = uppers; /* the bytes stay alive while the GIL is released */
    return 1;
fail:
    Py_DECREF(seq);
    return 0;
}

static PyObject *render(PyObject *self, PyObject *args) {
    (void)self;
    Py_buffer data, nodes;
    long long size;
    PyObject *runs, *uppers, *keep = NULL, *result = NULL;
    if (!PyArg_ParseTuple(args, "y*LOy*O", &data, &size, &runs, &nodes, &uppers)) return NULL;
    tree_t tree;
    memset(&tree, 0, sizeof tree);
    out_t records = {0}, proofs = {0};
    Py_ssize_t count = check_rows(data.buf, data.len, size);
    if (count < 0 || !load_tree(&tree, runs, &nodes, uppers, &keep)) goto done;
    int64_t missing[2] = {0, 0};
    for (const unsigned char *cursor = data.buf, *end = cursor + data.len; cursor < end;) {
        row_t row;
        next_row(&cursor, end, &row); /* checked above */
        int level = block_level((uint64_t)(row.seq - 1), (uint64_t)size);
        if (!tree.upper[level]) {
            PyErr_Format(PyExc_ValueError, "no path above the block of level %d", level);
            goto done;
        }
    }
    int ok;
    Py_BEGIN_ALLOW_THREADS;
    ok = render_rows(data.buf, data.len, size, &tree, &records, &proofs, missing);
    Py_END_ALLOW_THREADS;
    if (ok == 0)
        PyErr_NoMemory();
    else if (ok < 0)
        PyErr_Format(PyExc_ValueError, "node (level %lld, index %lld) is not in the runs read", (long long)missing[0],
                     (long long)missing[1]);
    else
        result = Py_BuildValue("(y#y#n)", records.data ? records.data : "", (Py_ssize_t)records.n,
                               proofs.data ? proofs.data : "", (Py_ssize_t)proofs.n, count);
done:
    for (int level = 0; level < LEVELS; level++) free(tree.runs[level]);
    free(records.data);
    free(proofs.data);
    Py_XDECREF(keep);
    PyBuffer_Release(&data);
    PyBuffer_Release(&nodes);
    return result;
}

static PyMethodDef methods[] = {
    {"plan", plan, METH_VARARGS, "The runs of stored nodes a batch's proofs need."},
    {"render", render, METH_VARARGS, "A batch's records.jsonl and proofs.jsonl lines."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_lines", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__lines(void) { return PyModule_Create(&module); }
