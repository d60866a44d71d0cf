package main

import (
	"fmt"
	"strings"

	"github.com/campus-saas/campus/store"
)

// benchNotes are the notes a register holds (one per student in the
// benches: every field filled).
var benchNotes = []string{"Allergic to peanuts; inhaler kept in the office.", "Walks home with an older sibling.",
	"Transferred from Moi Primary.", "Scholarship: fees paid by the county.", "Needs glasses for the board.",
	"Prefect, Simba house.", "Collected by the guardian on Fridays.", "Plays in the school band."}

// benchRecord fills in's schema 3 fields with values as a school's
// register holds them: 20 classes, dates of birth over seven years, a
// guardian with a phone and an e-mail, mostly enrolled, a note.
func benchRecord(in *store.StudentInput, i int) {
	first, second := benchFirst[(i/3)%len(benchFirst)], benchSecond[(i/11)%len(benchSecond)]
	in.Class = fmt.Sprintf("Form %d%c", 1+i%4, 'A'+rune(i/4%5))
	in.DateOfBirth = fmt.Sprintf("%d-%02d-%02d", 2008+i%7, 1+i%12, 1+i%28)
	in.Gender = []string{"F", "M"}[i%2]
	in.GuardianName = first + " " + second
	in.GuardianPhone = fmt.Sprintf("+254 7%02d %03d %03d", i%100, (i/100)%1000, (i*7)%1000)
	in.GuardianEmail = fmt.Sprintf("guardian.%s%d@example.org", strings.ToLower(benchSecond[(i/11)%len(benchSecond)][:3]), i%1000)
	in.Status = store.Statuses[[]int{0, 0, 0, 0, 0, 0, 0, 1, 2, 3}[i%10]]
	in.StatusDate = fmt.Sprintf("%d-%02d-%02d", 2019+i%7, 1+i%12, 1+i%28)
	in.EnrolledOn = fmt.Sprintf("%d-01-%02d", 2019+i%7, 4+i%10)
	in.Notes = benchNotes[i%len(benchNotes)]
}
