package flash

import (
	"bytes"
	"encoding/binary"
)

// policy is how the blocks of one partition are chosen (package comment).
type policy int

const (
	allPolicy  policy = iota // every block
	fatPolicy                // metadata and used clusters of a FAT32 volume
	trimPolicy               // everything up to the last non-zero block
	headPolicy               // the first MiB
)

type action int

const (
	skip action = iota
	write
	deferZero // a zero block of a trimPolicy partition: written only if data follows
)

// planner decides, block by block in ascending order, what to write.
type planner struct {
	size  int64
	parts []Part
	gpt   bool
	fat   map[int64]*fatState // by partition start
	zero  span                // deferred zero blocks (trimPolicy)
	zpart int64               // start of the partition zero belongs to
}

type span struct{ off, n int64 }

func newPlanner(img *Image) *planner {
	return &planner{size: img.Size, parts: img.Parts, gpt: img.Parts != nil, fat: map[int64]*fatState{}}
}

func (p *planner) decide(off int64, b []byte) action {
	part, ok := p.partAt(off)
	if p.zero.n > 0 && (!ok || p.zpart != part.Start) {
		p.zero = span{} // the trimmed partition ended in zeros: they stay unwritten
	}
	if !p.gpt || off < mib || off >= p.size-mib {
		return write
	}
	if !ok {
		if isZero(b) {
			return skip
		}
		return write
	}
	rel := off - part.Start
	switch role(part.Name) {
	case headPolicy:
		if rel < mib || !isZero(b) {
			return write
		}
		return skip
	case trimPolicy:
		if isZero(b) {
			p.zpart = part.Start
			return deferZero
		}
		return write
	case fatPolicy:
		return p.fatBlock(part, rel, b)
	}
	return write
}

func (p *planner) partAt(off int64) (Part, bool) {
	for _, pt := range p.parts {
		if off >= pt.Start && off < pt.End {
			return pt, true
		}
	}
	return Part{}, false
}

func (p *planner) pushZero(off, n int64) {
	if p.zero.n == 0 {
		p.zero.off = off
	}
	p.zero.n += n
}

// takeZeros returns the deferred zero blocks to write before a data block.
func (p *planner) takeZeros() span {
	z := p.zero
	p.zero = span{}
	return z
}

// fatState is what has been read so far of a FAT32 volume.
type fatState struct {
	ok  bool // the boot sector is FAT32's; else every block is written
	l   fatLayout
	fat []byte // the first FAT, filled in as its blocks pass
}

// fatLayout is where a FAT32 volume keeps its FAT and clusters.
type fatLayout struct {
	fatOffset, fatBytes int64
	dataOffset          int64 // cluster 2
	clusterBytes        int64
	clusters            int64
}

func (p *planner) fatBlock(part Part, rel int64, b []byte) action {
	st := p.fat[part.Start]
	if st == nil {
		st = &fatState{}
		p.fat[part.Start] = st
	}
	if rel == 0 {
		st.l, st.ok = readFATLayout(b)
		if st.ok {
			st.fat = make([]byte, st.l.fatBytes)
		}
	}
	if !st.ok {
		return write
	}
	l := st.l
	// Copy whatever part of the first FAT this block holds.
	if lo, hi := max(rel, l.fatOffset), min(rel+int64(len(b)), l.fatOffset+l.fatBytes); lo < hi {
		copy(st.fat[lo-l.fatOffset:], b[lo-rel:hi-rel])
	}
	if rel < l.dataOffset {
		return write
	}
	first := (rel - l.dataOffset) / l.clusterBytes
	last := (rel + int64(len(b)) - 1 - l.dataOffset) / l.clusterBytes
	if first >= l.clusters {
		// Past the last cluster: not part of the volume.
		if isZero(b) {
			return skip
		}
		return write
	}
	for c := first; c <= min(last, l.clusters-1); c++ {
		e := (c + 2) * 4
		if e+4 > int64(len(st.fat)) || binary.LittleEndian.Uint32(st.fat[e:])&0x0fffffff != 0 {
			return write // used (or a FAT too short to tell: write)
		}
	}
	return skip
}

// readFATLayout reads a FAT32 boot sector; ok is false for anything else,
// and then the whole partition is written.
func readFATLayout(bs []byte) (fatLayout, bool) {
	if len(bs) < 512 || bs[510] != 0x55 || bs[511] != 0xaa || !bytes.Equal(bs[82:87], []byte("FAT32")) {
		return fatLayout{}, false
	}
	bytesPerSector := int64(binary.LittleEndian.Uint16(bs[11:]))
	sectorsPerCluster := int64(bs[13])
	reserved := int64(binary.LittleEndian.Uint16(bs[14:]))
	fats := int64(bs[16])
	totalSectors := int64(binary.LittleEndian.Uint32(bs[32:]))
	fatSectors := int64(binary.LittleEndian.Uint32(bs[36:]))
	if bytesPerSector < 512 || sectorsPerCluster == 0 || reserved == 0 || fats == 0 || fatSectors == 0 ||
		fatSectors*bytesPerSector > 64*mib {
		return fatLayout{}, false
	}
	l := fatLayout{
		fatOffset:    reserved * bytesPerSector,
		fatBytes:     fatSectors * bytesPerSector,
		dataOffset:   (reserved + fats*fatSectors) * bytesPerSector,
		clusterBytes: sectorsPerCluster * bytesPerSector,
	}
	if totalSectors <= reserved+fats*fatSectors {
		return fatLayout{}, false
	}
	l.clusters = (totalSectors - reserved - fats*fatSectors) / sectorsPerCluster
	return l, true
}

func isZero(b []byte) bool {
	return bytes.Equal(b, zeros[:len(b)])
}
