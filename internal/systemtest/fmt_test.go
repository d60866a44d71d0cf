package systemtest

import "fmt"

var sprintf = fmt.Sprintf
