package store

func init() {
	benchFill = benchRecord
	benchExtraOps = []ListOptions{
		{Class: "Form 2B"}, {Class: "Form 2B", Page: 50}, {Status: StatusLeft}, {EnrolledYear: 2024},
		{Class: "Form 2B", Query: "amina"}, {Query: "peanuts"}, {Query: "712"}, {Query: "example.org amina"},
	}
}
