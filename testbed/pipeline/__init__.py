"""Step logic shared by the Lambda handlers: each step reads what the previous one wrote, by URI."""
