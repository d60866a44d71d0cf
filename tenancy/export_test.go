package tenancy

// CheckServed is checkServed, for the tests of the package's commands.
var CheckServed = checkServed
