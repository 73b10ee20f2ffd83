-- Content templates (issue 8 item 6): the formatted values of a message's typed template
-- variables (CustomerName, Amount, DueDate, PaymentLink, InvoiceCount, CompanyName,
-- SupportPhone) as a JSON object. E-mail contacts carry them as contact-list columns and
-- Genesys renders the campaign's response template with them; null for rows from before.
alter table messages add column template_values varchar;
