"""What people read: failure text, terminal tables, the JSON results, JUnit properties,
Allure labels and attachments, the GitHub step summary and annotations, and the gates.

May import from every layer below it; never from the pytest glue.
"""
