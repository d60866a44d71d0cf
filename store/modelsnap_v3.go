package store

import (
	"bytes"
	"errors"
	"fmt"
	"time"

	"github.com/klauspost/compress/zstd"
)

// The saved read model of the release before (format 3: every field of
// every student, zstd-compressed) is still read, once per school: a
// woken app decodes it unsealed, seals it and saves it in this format.
// Without this, every school's first wake after an upgrade loads its
// students from the collection, and on the embedded database that is a
// pass over every school of the machine at once (measured with the
// 1,000-school mix: starts of 1.8–2.6 s, the 100,000-student school not
// answering for minutes). It costs what a wake cost before the upgrade
// (the unsealed model for a moment), and the same checks apply: the
// head's and the payload's tenant ID and journal position, the SHA-256 of
// the compressed payload, every order a permutation. A later release
// drops this file.
const snapFormatPrev = 3

// decodeSnapshotPrev builds a sealed snapshot from a payload of format 3.
func decodeSnapshotPrev(blob []byte, tenantID string, seq int64, now time.Time) (*snapshot, error) {
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(1<<30), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, err
	}
	payload, err := dec.DecodeAll(blob, nil)
	dec.Close()
	if err != nil {
		return nil, fmt.Errorf("format %d: decompress: %w", snapFormatPrev, err)
	}
	sn, err := decodePrevPayload(payload, tenantID, seq, now)
	if err != nil {
		return nil, err
	}
	sn.seal()
	return sn, nil
}

// prevZeroNanos is what format 3 holds for a zero time.
var prevZeroNanos = time.Time{}.UnixNano()

func decodePrevPayload(payload []byte, tenantID string, seq int64, now time.Time) (*snapshot, error) {
	r, err := readPayloadHead(payload, snapFormatPrev, tenantID, seq)
	if err != nil {
		return nil, err
	}
	n := r.uvarint()
	if r.err != nil || n > uint64(len(payload)) {
		return nil, errors.New("bad count")
	}
	sn := &snapshot{seq: seq, checked: now, loadedAt: now}
	sn.ids, sn.rec, sn.at = make([]int64, 0, n), make([]uint32, 0, n), make([]int32, 0, n)
	sn.recs, sn.text = make([]byte, 0, len(payload)*7/8), make([]byte, 0, len(payload)*5/8)
	var keys [numKeys][]byte
	for i := range n {
		id := r.varint()
		created := r.varint()
		updated := created + r.varint()
		var flags byte
		if created == prevZeroNanos {
			flags |= recNoCreated
		}
		if updated == prevZeroNanos {
			flags |= recNoUpdated
		}
		var texts [len(recordTexts)][]byte
		for k := range texts {
			texts[k] = r.str()
		}
		var nums [len(recordNums)]uint64
		for k := range nums {
			nums[k] = r.uvarint()
		}
		sn.text = append(sn.text, '\n')
		start := len(sn.text)
		var kind byte
		if r.err == nil && r.off < len(r.all) {
			kind, r.off = r.all[r.off], r.off+1
		} else if r.err == nil {
			r.err = errors.New("past the end")
		}
		switch kind {
		case 1: // the lower case of the names, joined by spaces
			for k, s := range texts[:numKeys] {
				if k > 0 {
					sn.text = append(sn.text, ' ')
				}
				from := len(sn.text)
				for _, c := range s {
					if 'A' <= c && c <= 'Z' {
						c += 'a' - 'A'
					}
					sn.text = append(sn.text, c)
				}
				keys[k] = sn.text[from:]
			}
			sn.text = append(sn.text, r.str()...)
		case 0:
			keys[ordRegNo], keys[ordFirst], keys[ordSecond] = r.str(), r.str(), r.str()
			sn.text = append(sn.text, r.str()...)
		default:
			r.err = errors.New("bad keys")
		}
		if r.err != nil {
			return nil, r.err
		}
		if bytes.IndexByte(sn.text[start:], '\n') >= 0 {
			return nil, errors.New("a line break in a search text")
		}
		if i > 0 && sn.ids[i-1] >= id {
			return nil, errors.New("students out of order")
		}
		sn.ids = append(sn.ids, id)
		sn.at = append(sn.at, int32(start))
		sn.rec = append(sn.rec, uint32(len(sn.recs)))
		sn.recs = appendFields(sn.recs, flags, created, updated, texts, nums, keys, sn.text[start:])
	}
	for _, o := range [...]int{ordRegNo, ordFirst, ordSecond} {
		seen := make([]bool, n)
		order := make([]int32, n)
		for i := range order {
			p := r.uvarint()
			if r.err != nil || p >= n || seen[p] {
				return nil, errors.New("bad order")
			}
			seen[p] = true
			order[i] = int32(p)
		}
		sn.posOf[o] = order
	}
	if r.err != nil {
		return nil, r.err
	}
	if r.off != len(r.all) {
		return nil, errors.New("trailing bytes")
	}
	sn.recs, sn.text = fit(sn.recs), fit(sn.text)
	return sn, nil
}
