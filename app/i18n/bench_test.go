package i18n

import (
	"testing"
	"time"
)

func BenchmarkT(b *testing.B) {
	en, fr := Get("en"), Get("fr")
	b.Run("plain", func(b *testing.B) {
		for b.Loop() {
			fr.T("Students")
		}
	})
	b.Run("plural en", func(b *testing.B) {
		for b.Loop() {
			en.T("%d students", 5000)
		}
	})
	b.Run("plural fr", func(b *testing.B) {
		for b.Loop() {
			fr.T("%d students", 5000)
		}
	})
	b.Run("num", func(b *testing.B) {
		for b.Loop() {
			en.T("%d", 12)
		}
	})
	b.Run("page %d", func(b *testing.B) {
		for b.Loop() {
			en.T("Page %d", 12)
		}
	})
	b.Run("when", func(b *testing.B) {
		loc, _ := LoadZone("Africa/Nairobi")
		at := time.Now()
		for b.Loop() {
			fr.When(at, loc)
		}
	})
	b.Run("LoadZone", func(b *testing.B) {
		for b.Loop() {
			LoadZone("Africa/Nairobi")
		}
	})
}
