module floy.example/client

go 1.19
