import { Controller, HttpCode, Post } from '@nestjs/common';
import { ReportsService, type DailyReport } from './reports.service.js';

@Controller('reports')
export class ReportsController {
  constructor(private readonly reports: ReportsService) {}

  /** 200 with the report, or 409 Conflict while another request, on any instance, is building it. */
  @Post('daily')
  @HttpCode(200)
  daily(): Promise<DailyReport> {
    return this.reports.daily();
  }
}
